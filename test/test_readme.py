"""README.md is the product's front page: the two commands, a link to every reference page in docs/ (the checks of
the links themselves and of the parameter tables are in test/test_docs.py)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_names_the_two_commands():
    assert "make demo" in README and "make test" in README


def test_readme_links_every_docs_page():
    pages = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "docs").rglob("*.md"))
    assert pages, "docs/ has no pages"
    unlinked = [page for page in pages if f"]({page})" not in README and f"]({page}#" not in README]
    assert not unlinked, f"README.md links none of {unlinked}"


def test_readme_results_are_the_report_run_the_shipped_checkpoint_records():
    """The published table is regenerated from models/rt1_sim/config.yaml's latest report run, never typed."""
    from rt1_ros.closed_loop.readme_results import README_BLOCK, latest_report_run, results_block

    record = latest_report_run(ROOT / "models" / "rt1_sim")
    assert README_BLOCK.current(README) == results_block(record, "models/rt1_sim"), \
        "README's results differ from the shipped checkpoint's report run: python -m " \
        "rt1_ros.closed_loop.readme_results --write"
