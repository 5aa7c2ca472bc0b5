"""The documentation: README.md is the front page (at most 300 lines) and docs/ holds a page per subject. Every
relative link in them must lead to a file, and a `#anchor` to a heading of that file (GitHub's slugs), so nothing
the README points to can silently go missing; docs/parameters.md's tables must be the ones the config fields
generate, naming every parameter the nodes declare."""
from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PARAMETERS_PAGE = DOCS / "parameters.md"
README_MAX_LINES = 300

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text (links reduced to their text) in lower case, everything but
    letters, digits, `_`, `-` and spaces dropped, spaces turned into `-`."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor; a repeated slug gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def links(path: Path) -> list[str]:
    """The targets of the page's Markdown links and images, outside code (a link's text may span lines)."""
    lines = prose_lines(path.read_text(encoding="utf-8"))
    return LINK.findall("\n".join(INLINE_CODE.sub("", line) for line in lines))


def broken_links(path: Path) -> list[str]:
    """The page's relative link targets that lead nowhere: a missing file, or an anchor that is no heading of its
    (Markdown) file. Links with a scheme (https:, mailto:) are not followed."""
    broken = []
    for target in links(path):
        if SCHEME.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        file = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not file.exists():
            broken.append(target)
            continue
        if anchor and (file.suffix != ".md" or unquote(anchor) not in anchors(file)):
            broken.append(target)
    return broken


# ------------------------------------------------------------------------------------------------ the pages
def test_readme_is_at_most_300_lines():
    count = len(README.read_text(encoding="utf-8").splitlines())
    assert count <= README_MAX_LINES, (f"README.md has {count} lines (at most {README_MAX_LINES}): move reference "
                                       "material to a docs/ page and link it")


@pytest.mark.parametrize("page", pages(), ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    broken = broken_links(page)
    assert not broken, f"{page.relative_to(ROOT)} links to what does not exist: {broken}"


def test_the_link_check_finds_missing_files_and_anchors(tmp_path):
    """The check itself: it must report each kind of broken link and nothing else."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# A page\n\n## Second `part`: here\n\n## Again\n\n## Again\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Top heading\n"
        "[ok](docs/page.md) [ok anchor](docs/page.md#second-part-here) [repeat](docs/page.md#again-1)\n"
        "[self](#top-heading)\n"
        "[missing file](docs/nope.md) [missing anchor](docs/page.md#nowhere) ![image](docs/images/none.png)\n"
        "[self missing](#no-such-heading) [web](https://example.com/x.md) [third](docs/page.md#again-2)\n"
        "[a link whose text\nspans two lines](docs/gone.md)\n"
        "`[inline code](docs/nope2.md)`\n"
        "```\n[in a code block](docs/also_nope.md)\n```\n")
    assert broken_links(readme) == [
        "docs/nope.md", "docs/page.md#nowhere", "docs/images/none.png", "#no-such-heading", "docs/page.md#again-2",
        "docs/gone.md"]


def test_github_slugs():
    assert github_slug("Topics and services of `rt1_node`") == "topics-and-services-of-rt1_node"
    assert github_slug("E-stop: `twist_mux`") == "e-stop-twist_mux"
    assert github_slug("Transport between processes (Fast DDS profile)") == \
        "transport-between-processes-fast-dds-profile"
    assert github_slug("This repository's development set-up") == "this-repositorys-development-set-up"


# ------------------------------------------------------------------------------------ docs/parameters.md
def parameters_page() -> str:
    return PARAMETERS_PAGE.read_text(encoding="utf-8")


def test_every_rt1_node_parameter_is_documented():
    from rt1_ros.node.parameters import PARAMETER_SPECS

    text = parameters_page()
    missing = [name for name in PARAMETER_SPECS if f"| `{name}` |" not in text]
    assert not missing, f"docs/parameters.md's rt1_node table lacks {missing}"


def test_every_sim_node_parameter_is_documented():
    from rt1_ros.sim.config import SimNodeConfig

    text = parameters_page()
    missing = [f.name for f in fields(SimNodeConfig) if f"| `{f.name}` |" not in text]
    assert not missing, f"docs/parameters.md's sim_node table lacks {missing}"


def test_parameter_tables_are_generated_from_the_config_fields():
    from rt1_ros.node.parameter_table import parameter_tables

    text = parameters_page()
    for node, table in parameter_tables().items():
        assert table in text, (f"docs/parameters.md's {node} table differs from the config fields: paste the output "
                               f"of `scripts/rt1-env python -m rt1_ros.node.parameter_table {node}`")


PYTHON_MODULE = re.compile(r"python3? -m (rt1_ros(?:\.\w+)*)")


def runnable(module: str) -> bool:
    """Whether `python -m module` runs something: a package with __main__.py, or a module whose source has a
    `__main__` guard."""
    path = ROOT.joinpath(*module.split("."))
    if path.is_dir():
        return (path / "__main__.py").is_file()
    source = path.with_suffix(".py")
    return source.is_file() and 'if __name__ == "__main__":' in source.read_text()


def test_runnable_finds_modules_that_do_nothing_as_programs():
    assert runnable("rt1_ros.training") and runnable("rt1_ros.closed_loop.evaluation")
    assert not runnable("rt1_ros.training.cli")  # main() is defined, nothing calls it
    assert not runnable("rt1_ros.no_such_module")


@pytest.mark.parametrize("document", [*pages(), *sorted((ROOT / "scripts").glob("*.sh")), ROOT / "Makefile"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_dash_m_command_runs_a_program(document):
    """A `python -m rt1_ros.x` in a page, a script or the Makefile that names a module without a `__main__` exits
    0 and does nothing: a recipe step that silently never ran."""
    modules = set(PYTHON_MODULE.findall(document.read_text()))
    assert not [m for m in sorted(modules) if not runnable(m)]
