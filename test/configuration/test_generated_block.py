"""A generated Markdown block is found between its markers, replaced there only, and refused without them."""
import pytest

from rt1_ros.configuration.generated_block import GeneratedBlock

BLOCK = GeneratedBlock("<!-- table: begin -->", "<!-- table: end -->")


def test_a_block_is_replaced_between_its_markers_and_nowhere_else():
    page = f"intro\n{BLOCK.begin}\nold\n{BLOCK.end}\noutro\n"
    updated = BLOCK.replace(page, "| a |\n| b |")
    assert BLOCK.current(updated) == "| a |\n| b |"
    assert updated.startswith("intro\n") and updated.endswith(f"{BLOCK.end}\noutro\n") and "old" not in updated


def test_a_page_without_both_markers_is_refused():
    with pytest.raises(ValueError, match="markers"):
        BLOCK.replace(f"{BLOCK.begin} only", "x")
    with pytest.raises(ValueError, match="markers"):
        BLOCK.current(f"{BLOCK.end} before {BLOCK.begin}")


def test_writing_into_a_page_changes_the_block_and_leaves_a_page_without_markers_alone(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"# t\n{BLOCK.begin}\nold\n{BLOCK.end}\n", encoding="utf-8")
    BLOCK.write_into(page, "new")
    assert page.read_text(encoding="utf-8") == f"# t\n{BLOCK.begin}\nnew\n{BLOCK.end}\n"
    plain = tmp_path / "plain.md"
    plain.write_text("# no markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="markers"):
        BLOCK.write_into(plain, "new")
    assert plain.read_text(encoding="utf-8") == "# no markers\n"
