"""Making a policy, one module per concept, in the order a run meets them:

    demonstrations   rt1-generate: scripted-expert (and DAgger) demonstrations from the simulator
    ordinary_bags    rt1-sim-bags: expert episodes as a robot's ordinary-topic rosbags
    ordinary_bag_comparison  rt1-sim-bags compare: the import's actions against the expert's, per dimension
    config           TrainConfig (config/train.yaml) and --set key=value overrides
    sampler          the episode split, batches of windows built as at inference, crop and colour jitter
    heads            the training-only heads (scene-state regression, target cell) that shape the encoder
    objective        TrainingObjective: the policy's action loss plus the weighted heads' losses; the heads' files
    optimizer        AdamW parameter groups and the learning-rate schedule
    optimizer_state  optimizer state as safetensors + JSON (no pickle)
    distributed      torchrun / DistributedDataParallel
    metrics          metrics.csv, training-window means, validation tallies
    trainer          Trainer: set-up, then `run`, the training loop over the objective (RT1Policy.forward and heads)
    cli              rt1-train (also `python -m rt1_ros.training`)
    recipe           rt1-recipe: one generation and one training run from one file (make model)
"""
