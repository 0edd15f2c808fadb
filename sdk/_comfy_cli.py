"""`nodeloom import-comfy` and `nodeloom export-comfy`: ComfyUI workflows in and out."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console

from nodeloom import comfy
from nodeloom._run import load

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


@click.command("import-comfy")
@click.argument("workflow", metavar="WORKFLOW", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Where to write the graph [default: print it].")
@click.option("--lenient", is_flag=True,
              help="Import the nodes that can be imported and list the rest, instead of refusing the workflow.")
def import_comfy(workflow: str, output: str | None, lenient: bool) -> None:
    """Turn a ComfyUI workflow into a nodeloom graph of comfy nodes.

    WORKFLOW is a ComfyUI file in the API format ("Export (API)") or the UI format (a
    saved workflow), or a PNG ComfyUI wrote (its metadata holds the workflow). Prompts,
    seeds, sizes and step counts become graph inputs:

    \b
      nodeloom import-comfy workflow.json -o graph.json
      nodeloom run graph.json --set positive="a red fox" --set seed=7
    Models are looked up in $NODELOOM_MODELS (ComfyUI's models/ layout: checkpoints/,
    loras/, vae/). Exits 1 when the workflow has nodes nodeloom cannot run, listing them all.
    """
    imported = comfy.import_workflow(workflow, lenient=lenient)
    graph = imported.graph
    text = graph.dumps()
    if output:
        Path(output).write_text(text + "\n", encoding="utf-8")
    else:
        click.echo(text)
    summary = (f"imported {workflow} ({imported.format.upper() if imported.format == 'api' else 'UI'} format): "
               f"{len(graph.nodes)} nodes; inputs: {', '.join(graph.inputs) or 'none'}; "
               f"outputs: {', '.join(graph.outputs) or 'none'}")
    err.print(f"[green]✓[/] {summary}" + (f" → {output}" if output else ""), markup=True)
    if imported.skipped:
        err.print(f"[yellow]left out {len(imported.skipped)} node(s):[/]", markup=True)
        for issue in imported.skipped:
            err.print(f"  {issue.node}: {issue.message} ({issue.code})", markup=False)


@click.command("export-comfy")
@click.argument("graph_file", metavar="GRAPH.json", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Where to write the workflow [default: print it].")
def export_comfy(graph_file: str, output: str | None) -> None:
    """Write a graph of comfy nodes as a ComfyUI workflow in the API format.

    Graph inputs are written as their defaults. ComfyUI opens the file with "Load (API)";
    `nodeloom import-comfy` reads it back to the same graph.
    """
    prompt = comfy.export(load(graph_file))
    text = json.dumps(prompt, indent=2, ensure_ascii=False)
    if output:
        Path(output).write_text(text + "\n", encoding="utf-8")
        err.print(f"[green]✓[/] exported {len(prompt)} nodes → {output}", markup=True)
    else:
        click.echo(text)
