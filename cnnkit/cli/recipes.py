"""``cnnkit recipes [NAME]``: the shipped training recipes, or one recipe in full.

Without a name: one row per recipe - name, model, dataset, the paper's number, epochs and
the command that reruns it. With a name: its description, paper, target (and where the
number comes from), every TrainConfig value, why each departure from the paper was made,
and the command spelled out flag by flag (it runs even without ``--recipe``).
"""

from __future__ import annotations

import argparse
import json

from cnnkit.recipes import dataset_name, list_recipes, load_recipe, paper_text, recipe_command, train_options


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "recipes",
        help="list the training recipes that reproduce papers, or print one",
        description="The shipped training recipes (cnnkit/recipes/*.toml): the paper's setup and why ours differs.",
    )
    p.add_argument("name", nargs="?", help="a recipe to print in full")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(run=run)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _show(name: str) -> str:
    recipe = load_recipe(name)
    target = recipe["target"]
    lines = [f"{name}: {recipe['description']}", f"paper:   {recipe['paper']}"]
    goal = target.get("goal")
    goal_text = "" if goal is None else f"; goal {goal:g} {target['metric']}"
    lines.append(f"target:  {paper_text(target)}{goal_text} ({target['source']})")
    lines.append("config:")
    for key, value in train_options(recipe).items():
        shown = recipe["data_ref"] if key == "data" else value
        lines.append(f"  {key} = {shown!r}")
    if recipe["why"]:
        lines.append("why it differs from the paper:")
        lines += [f"  {key}: {text}" for key, text in recipe["why"].items()]
    lines.append(f"run:     {recipe_command(name)}")
    lines.append(f"  today: {recipe_command(name, expand=True)}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.name:
        if args.json:
            recipe = load_recipe(args.name)
            recipe["command"] = recipe_command(args.name)
            print(json.dumps(recipe, indent=2, default=str))
        else:
            print(_show(args.name))
        return 0
    recipes = [load_recipe(n) for n in list_recipes()]
    if args.json:
        print(
            json.dumps([{**r, "command": recipe_command(r["name"])} for r in recipes], indent=2, default=str)
        )
        return 0
    rows = [["name", "model", "dataset", "paper", "epochs", "command"]]
    for r in recipes:
        rows.append(
            [r["name"], str(r["model"]), dataset_name(r), paper_text(r["target"]), str(r["epochs"]),
             recipe_command(r["name"])]
        )  # fmt: skip
    print(_table(rows))
    print(
        f"{len(recipes)} recipes; 'cnnkit recipes NAME' prints one with the reasons it departs from the paper."
    )
    return 0
