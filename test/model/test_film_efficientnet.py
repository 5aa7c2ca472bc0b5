import pytest
import torch

from rt1_ros.model.film_efficientnet import (IMAGENET_MEAN, IMAGENET_STD, FiLM, FiLMEfficientNet, keras_stride2_pad,
                                             output_spatial_size, tf_resize_bilinear)
from rt1_ros.model.rt1 import RT1, RT1Config


def test_paper_backbone_has_26_mbconv_blocks_each_followed_by_film(paper_config):
    backbone = FiLMEfficientNet(paper_config.backbone)
    assert len(backbone.blocks) == 26
    assert len(backbone.films) == 26
    assert sum(isinstance(m, FiLM) for m in backbone.modules()) == 26
    assert [s.out_channels for s in paper_config.backbone.stages] == [24, 32, 48, 96, 136, 232, 384]
    assert paper_config.backbone.stem_channels == 40


def test_film_is_identity_at_initialisation(paper_config):
    torch.manual_seed(0)
    backbone = FiLMEfficientNet(paper_config.backbone).eval()
    images = torch.rand(2, 3, 96, 96)
    conditioning = torch.randn(2, 512) * 5
    with torch.no_grad():
        with_film = backbone(images, conditioning)
        without_film = backbone(images, conditioning, use_film=False)
    torch.testing.assert_close(with_film, without_film, rtol=0, atol=0)


def test_film_modulates_once_trained(tiny_config):
    torch.manual_seed(0)
    model = RT1(tiny_config).eval()
    for film in model.image_encoder.films:
        torch.nn.init.normal_(film.projection.weight, std=0.1)
    images = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        a = model.image_encoder(images, torch.randn(1, tiny_config.embed_dim))
        b = model.image_encoder(images, torch.randn(1, tiny_config.embed_dim))
    assert not torch.allclose(a, b)


def test_feature_map_at_300_pixels_is_10_and_pooled_to_9(paper_config):
    # Symmetric PyTorch padding gives 10×10 where Keras "same" gives 9×9; the pool makes it 9×9 either way.
    assert output_spatial_size(300, paper_config.backbone) == 10
    backbone = FiLMEfficientNet(paper_config.backbone).eval()
    with torch.no_grad():
        tokens = backbone(torch.rand(1, 3, 300, 300), torch.zeros(1, 512))
    assert tokens.shape == (1, 81, 512)


def test_position_embedding_keeps_where_features_are_through_the_token_learner():
    """The TokenLearner pools positions with learned weights, so it cannot tell a feature map from the same features
    at other positions; the position embedding (on in the `sim` size) is what makes the two differ."""
    import torch

    from rt1_ros.model.rt1 import RT1, RT1Config

    torch.manual_seed(0)
    model = RT1(RT1Config.from_yaml("sim")).eval()
    encoder, learner = model.image_encoder, model.token_learner
    assert encoder.position_embedding is not None
    assert RT1(RT1Config.from_yaml("tiny")).image_encoder.position_embedding is None  # the paper's design: none
    features = torch.randn(1, encoder.config.token_grid ** 2, encoder.config.embed_dim)
    moved = features[:, torch.randperm(features.shape[1])]  # the same features, elsewhere in the image
    with torch.no_grad():
        assert torch.allclose(learner(features), learner(moved), atol=1e-5)  # without positions: identical
        with_position = learner(features + encoder.position_embedding)
        moved_with_position = learner(moved + encoder.position_embedding)
    assert (with_position - moved_with_position).abs().max() > 1e-3

    images, conditioning = torch.rand(2, 3, 128, 128), torch.randn(2, encoder.config.conditioning_dim)
    with torch.no_grad():
        tokens = encoder(images, conditioning)
        embedding, encoder.position_embedding = encoder.position_embedding, None
        bare = encoder(images, conditioning)
    torch.testing.assert_close(tokens - bare, embedding.expand_as(tokens))


def test_untrained_encoder_tokens_depend_on_the_frame(paper_config):
    """he_init (on in paper and tiny): in eval mode at initialisation the frame still reaches the tokens. With
    PyTorch's default conv init the frame-dependent part falls ~42x per MBConv without a skip connection and ends
    ~1e-12 of the projection bias (scripts/activation_report.py)."""
    from dataclasses import replace

    images = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    conditioning = torch.zeros(2, 512)

    def frame_share(config) -> float:
        torch.manual_seed(0)
        backbone = FiLMEfficientNet(config).eval()
        with torch.no_grad():
            tokens = backbone(images, conditioning)  # (2, 81, 512)
        return ((tokens[0] - tokens[1]).norm() / tokens.norm()).item()

    assert paper_config.backbone.he_init
    assert frame_share(paper_config.backbone) > 0.05
    assert frame_share(replace(paper_config.backbone, he_init=False)) < 1e-6


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'SAME' padding (before, after) of one axis, from its documented formula."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("size", [8, 9, 14, 15])
@pytest.mark.parametrize("kernel", [3, 5])
def test_keras_stride2_padding_is_tf_same_on_even_sizes_and_one_pixel_less_on_odd(size, kernel):
    x = torch.randn(1, 2, size, size)
    weight = torch.randn(2, 1, kernel, kernel)
    ours = torch.nn.functional.conv2d(keras_stride2_pad(x, kernel), weight, stride=2, groups=2)
    before, after = tf_same_padding(size, kernel, 2)
    same = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (before, after, before, after)), weight, stride=2,
                                      groups=2)
    if size % 2 == 0:
        torch.testing.assert_close(ours, same)
    else:
        # Keras' correct_pad for an input of unknown size assumes an even one: (k//2 - 1, k//2), not SAME's
        # (k//2, k//2), so the map is size // 2 and its values are SAME's shifted by a pixel.
        assert ours.shape[-1] == size // 2 and same.shape[-1] == size // 2 + 1
        torch.testing.assert_close(ours, torch.nn.functional.conv2d(
            torch.nn.functional.pad(x, (kernel // 2 - 1, kernel // 2) * 2), weight, stride=2, groups=2))
        assert not torch.allclose(ours, same[..., :-1, :-1])


def test_official_backbone_gives_the_released_9x9_map_from_256x320_frames():
    """The released tokenizer reshapes the map to 81 tokens: Keras' padding gives 300 -> 150 -> 75 -> 37 -> 18 -> 9
    (TF SAME would give 10)."""
    config = RT1Config.from_yaml("official")
    assert output_spatial_size(300, config.backbone) == 9
    torch.manual_seed(0)
    backbone = FiLMEfficientNet(config.backbone, config.image_size).eval()
    assert backbone.top is not None and backbone.token_film is not None and backbone.token_projection.bias is None
    with torch.no_grad():
        tokens = backbone(torch.rand(1, 3, 256, 320), torch.zeros(1, 512))  # resized to 300×300 inside
    assert tokens.shape == (1, 81, 512)


def test_resize_input_is_tensorflows_bilinear_resize():
    """tf.image.resize(bilinear, antialias=False) samples at (i + 0.5)·scale - 0.5 with scale = in/out in float32,
    clamped to the edge pixels, and interpolates as a + (b - a)·lerp; written out here for one axis (downsampling
    320 -> 300, upsampling 256 -> 300). PyTorch's interpolate samples the same points with other rounding."""
    config = RT1Config.from_yaml("official")
    backbone = FiLMEfficientNet(config.backbone, 300)
    row = torch.rand(320)
    for size, values in ((320, row), (256, row[:256])):
        image = values.expand(1, 3, 4, size) if size == 320 else values.view(1, 1, size, 1).expand(1, 3, size, 4)
        scale = torch.tensor(size, dtype=torch.float32) / 300
        source = (torch.arange(300) + 0.5) * scale - 0.5
        low = source.floor().clamp(min=0).long()
        high = source.ceil().clamp(max=size - 1).long()
        expected = values[low] + (values[high] - values[low]) * (source - source.floor())
        with torch.no_grad():
            resized = tf_resize_bilinear(image, 300)
            normalised = backbone.normalise(image)
        got = resized[0, 0, 0] if size == 320 else resized[0, 0, :, 0]
        assert torch.equal(got, expected)
        torch.testing.assert_close(resized, torch.nn.functional.interpolate(image, size=(300, 300), mode="bilinear",
                                                                            align_corners=False))
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        torch.testing.assert_close(normalised, (resized - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / std)
