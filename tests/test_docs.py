"""The documentation in docs/ stays true: its code runs, its API page is current, its links resolve.

Rules for docs/*.md:
- a fenced block whose info string is exactly ``python`` is executed; blocks meant only to be
  read are fenced as ``text``, ``bash`` (or ``pycon``);
- the ``python`` blocks of a page run in order, in one namespace, in an empty temporary
  working directory;
- a block whose first line starts with ``# real model`` needs all-MiniLM-L6-v2: those blocks
  run in their own namespace, in order, in an integration test; the others never depend on them.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
REAL_MODEL = "# real model"
_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """``(line number, code)`` of every ```` ```python ```` block of a Markdown file, in order."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        if match.group(1).strip() == "python":
            line = text.count("\n", 0, match.start()) + 2  # first line of code
            blocks.append((line, match.group(2)))
    return blocks


def run_blocks(path: Path, blocks: list[tuple[int, str]]) -> dict:
    """Execute ``blocks`` in order in one namespace; a failure names the page and line.

    The namespace is a module registered under its name while the blocks run, so a Cell class a
    page defines can be compiled in GRAPH_MODE (MindSpore imports the class's module and reads its
    source: the padded line numbers point into the Markdown file).
    """
    import sys
    import types

    name = f"docs_{path.stem.replace('-', '_')}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    try:
        for line, code in blocks:
            # pad with newlines so tracebacks (and inspect.getsource) use the Markdown file's line numbers
            compiled = compile("\n" * (line - 1) + code, str(path), "exec")
            exec(compiled, module.__dict__)  # noqa: S102 - the documentation's own examples
    finally:
        sys.modules.pop(name, None)
    return module.__dict__


def _split(path: Path) -> tuple[list, list]:
    blocks = python_blocks(path)
    real = [b for b in blocks if b[1].lstrip().startswith(REAL_MODEL)]
    plain = [b for b in blocks if not b[1].lstrip().startswith(REAL_MODEL)]
    return plain, real


PAGES = sorted(p.name for p in DOCS.glob("*.md"))


def test_the_expected_pages_exist():
    expected = {"index.md", "concepts.md", "tutorial.md", "api.md", "migrating-from-golden-stick.md", "faq.md"}
    assert expected <= set(PAGES)


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if p != "api.md"])
def test_python_blocks_run(page, tmp_path, monkeypatch):
    path = DOCS / page
    plain, _ = _split(path)
    if not plain:
        pytest.skip(f"{page} has no python blocks")
    monkeypatch.chdir(tmp_path)
    run_blocks(path, plain)


def test_tutorial_has_both_starting_points_and_every_step():
    plain, real = _split(DOCS / "tutorial.md")
    code = "\n".join(c for _, c in plain)
    real_code = "\n".join(c for _, c in real)
    assert "load_hf_bert" in real_code and "fetch_minilm()" in real_code
    for call in ("load_checkpoint(", "BertClassifierWithLoss(", "parameter_groups(", "adamw(",
                 "TrainStep(", "nn.TrainOneStepCell(", ".convert(", "load_pruned(", "export_mindir(",
                 "load_mindir(", "read_heads_to_prune("):
        assert call in code, call


@pytest.mark.integration
def test_tutorial_real_model_blocks_run(tmp_path, monkeypatch):
    path = DOCS / "tutorial.md"
    _, real = _split(path)
    assert real, "tutorial.md should show the real model"
    monkeypatch.chdir(tmp_path)
    run_blocks(path, real)


@pytest.mark.integration
@pytest.mark.timeout(900)  # about three minutes here
def test_own_data_walkthrough_runs_from_the_repository_root(monkeypatch):
    path = DOCS / "own-data.md"
    _, real = _split(path)
    assert real and "samples/reviews/train.csv" in real[0][1]
    monkeypatch.chdir(DOCS.parent)  # the page's paths are the repository's; outputs go to a temp dir
    namespace = run_blocks(path, real)
    # the run the page shows is the shipped reviews CSV end to end: check what it measured
    report = namespace["report"].to_dict()
    assert report["data"]["label_names"] == ["negative", "positive"] and report["heads_kept"] == 48
    assert report["eval_pairs"] == 80 and report["pruned_equals_gated"]
    assert set(report["metrics"]["pruned"]["per_class_accuracy"]) == {"negative", "positive"}


# ---------------------------------------------------------------------------- api.md
def _gen_api():
    spec = importlib.util.spec_from_file_location("gen_api", DOCS / "gen_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_md_has_a_heading_for_every_public_name():
    import lrp_prune

    headings = set(re.findall(r"^#{2,4} (\S+)\s*$", (DOCS / "api.md").read_text(encoding="utf-8"), re.MULTILINE))
    missing = [name for name in lrp_prune.__all__ if name not in headings]
    assert not missing, f"api.md lacks {missing}: run python docs/gen_api.py"


def test_api_md_is_what_gen_api_produces():
    expected = _gen_api().render()
    current = (DOCS / "api.md").read_text(encoding="utf-8")
    assert current == expected, "docs/api.md is stale: run python docs/gen_api.py"


# ---------------------------------------------------------------------------- links
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(path: Path) -> set[str]:
    """GitHub-style anchors of a Markdown file's headings."""
    out = set()
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    for heading in re.findall(r"^#{1,6} (.+?)\s*$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    for name in re.findall(r'<a id="([^"]+)"', text):
        out.add(name)
    return out


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_resolve(page):
    path = DOCS / page
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    for target in _LINK.findall(text):
        if re.match(r"^[a-z]+://", target) or target.startswith("mailto:"):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        assert linked.exists(), f"{page}: broken link {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{page}: no heading for #{anchor} in {linked.name}"
