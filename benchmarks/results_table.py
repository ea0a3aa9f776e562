"""The README's results table, built from the shipped model cards' results.json (BLEU from
train.publish, ECE from train.calibration).

    python -m benchmarks.results_table
"""

import json
from pathlib import Path

MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"


def table() -> list[str]:
    """The table's markdown lines, a row per shipped model and test split."""
    lines = ["| model | split | BLEU greedy | BLEU beam 5 | chrF beam 5 | ECE (val) | reproduce |",
             "|---|---|---|---|---|---|---|"]
    for folder in sorted(p for p in MODELS.iterdir() if (p / "results.json").exists()):
        data = json.loads((folder / "results.json").read_text())
        ece = data.get("calibration", {}).get("ece")
        ece = f"{ece:.3f}" if ece is not None else "–"
        for split, by_method in data["results"].items():
            cmd = (f"`python -m train.evaluate --model assets/models/{folder.name} --split {split}`")
            lines.append(f"| {folder.name} | {split} | {by_method['greedy']['bleu']:.2f}"
                         f" | {by_method['beam5']['bleu']:.2f} | {by_method['beam5']['chrf']:.2f} | {ece} | {cmd} |")
    return lines


def main() -> None:
    print("\n".join(table()))


if __name__ == "__main__":
    main()
