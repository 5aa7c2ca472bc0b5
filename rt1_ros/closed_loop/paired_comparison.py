"""Two rt1-eval runs on the same seeds, compared episode by episode.

Two checkpoints evaluated on the same seeds meet the same scenes and instructions, so their outcomes are paired: the
episodes both solve or both fail say nothing about which is better, and the difference lies in the discordant ones
(solved by one only). This prints, per condition and family, the pairs, each run's successes, how many only one of
them solved, and the exact two-sided McNemar p-value (a binomial test of the discordant pairs against an even
split), which is sharper than comparing two Wilson intervals.

    python -m rt1_ros.closed_loop.paired_comparison RUN_A RUN_B

RUN_A and RUN_B are rt1-eval outputs (the folder or its results.json). Episodes pair by condition, family and seed;
a pair whose instructions differ is refused (not the same task), and episodes without a partner are counted, not
compared.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PairedRow:
    condition: str
    family: str  # "all" for the condition's total
    pairs: int
    successes_a: int
    successes_b: int
    only_a: int
    only_b: int

    @property
    def p_value(self) -> float:
        return mcnemar_exact_p(self.only_a, self.only_b)


def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: the chance, if either run were as likely to win a discordant pair, of a
    split at least as uneven as ``only_a`` : ``only_b``. 1.0 with no discordant pair."""
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, k) for k in range(min(only_a, only_b) + 1)) / 2**discordant
    return min(1.0, 2 * tail)


def load_episodes(path: str | Path) -> tuple[str, dict[tuple[str, str, int], dict]]:
    """(checkpoint, {(condition, family, seed): episode}) of an rt1-eval output folder or results.json."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
        episodes = results["episodes"]
        checkpoint = str(results.get("settings", {}).get("checkpoint", path))
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not an rt1-eval results.json ({exc})") from exc
    keyed = {}
    for episode in episodes:
        key = (episode.get("condition", "seen"), episode["family"], int(episode["seed"]))
        if key in keyed:
            raise ValueError(f"{path}: episode {key} appears twice")
        keyed[key] = episode
    return checkpoint, keyed


def compare(episodes_a: dict, episodes_b: dict) -> tuple[list[PairedRow], int, int]:
    """Rows per (condition, family) in run A's order, each condition followed by its "all" row; and the episodes of
    A and of B that have no partner."""
    paired = [key for key in episodes_a if key in episodes_b]
    for key in paired:
        a, b = episodes_a[key]["instruction"], episodes_b[key]["instruction"]
        if a != b:
            raise ValueError(f"{key}: the runs gave different instructions ({a!r} and {b!r}): not the same task, "
                             "so not a pair (another simulator config?)")
    groups: dict[tuple[str, str], list[tuple[bool, bool]]] = {}
    for condition, family, seed in paired:
        outcome = (bool(episodes_a[(condition, family, seed)]["success"]),
                   bool(episodes_b[(condition, family, seed)]["success"]))
        groups.setdefault((condition, family), []).append(outcome)
        groups.setdefault((condition, "all"), []).append(outcome)
    rows = []
    for condition in dict.fromkeys(condition for condition, _ in groups):
        families = [family for c, family in groups if c == condition and family != "all"]
        for family in families + ["all"]:
            outcomes = groups[(condition, family)]
            rows.append(PairedRow(
                condition=condition, family=family, pairs=len(outcomes),
                successes_a=sum(a for a, _ in outcomes), successes_b=sum(b for _, b in outcomes),
                only_a=sum(a and not b for a, b in outcomes), only_b=sum(b and not a for a, b in outcomes)))
    return rows, len(episodes_a) - len(paired), len(episodes_b) - len(paired)


def markdown(rows: list[PairedRow], name_a: str, name_b: str) -> str:
    lines = [f"A = `{name_a}`, B = `{name_b}`", "",
             "| condition | family | pairs | A | B | only A | only B | McNemar p |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        family = f"**{row.family}**" if row.family == "all" else row.family
        lines.append(f"| {row.condition} | {family} | {row.pairs} | {row.successes_a} | {row.successes_b} | "
                     f"{row.only_a} | {row.only_b} | {row.p_value:.3g} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rt1_ros.closed_loop.paired_comparison", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_a", help="rt1-eval output folder (or its results.json)")
    parser.add_argument("run_b", help="the other run, on the same seeds")
    args = parser.parse_args(argv)
    try:
        name_a, episodes_a = load_episodes(args.run_a)
        name_b, episodes_b = load_episodes(args.run_b)
        rows, unpaired_a, unpaired_b = compare(episodes_a, episodes_b)
    except ValueError as exc:
        parser.error(str(exc))
    if not rows:
        parser.error("no episode of one run has a partner in the other (same condition, family and seed)")
    print(markdown(rows, name_a, name_b))
    if unpaired_a or unpaired_b:
        print(f"\nwithout a partner, not compared: {unpaired_a} episodes of A, {unpaired_b} of B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
