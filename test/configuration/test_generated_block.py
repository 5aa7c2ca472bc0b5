"""A generated Markdown block is found between its markers, replaced there only, and refused without them."""
import pytest

from rt1_ros.configuration.generated_block import current_block, replace_block

BEGIN, END = "<!-- table: begin -->", "<!-- table: end -->"


def test_a_block_is_replaced_between_its_markers_and_nowhere_else():
    page = f"intro\n{BEGIN}\nold\n{END}\noutro\n"
    updated = replace_block(page, BEGIN, END, "| a |\n| b |")
    assert current_block(updated, BEGIN, END) == "| a |\n| b |"
    assert updated.startswith("intro\n") and updated.endswith(f"{END}\noutro\n") and "old" not in updated


def test_a_page_without_both_markers_is_refused():
    with pytest.raises(ValueError, match="markers"):
        replace_block(f"{BEGIN} only", BEGIN, END, "x")
    with pytest.raises(ValueError, match="markers"):
        current_block(f"{END} before {BEGIN}", BEGIN, END)
