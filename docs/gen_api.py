"""Generate docs/api.md from ``lrp_prune.__all__``.

Usage (from the repository root, in the project's venv)::

    python docs/gen_api.py          # rewrite docs/api.md
    python docs/gen_api.py --check  # exit 1 if docs/api.md is not what this script produces

Every public name gets a ``###`` heading, its signature and the summary of its
docstring (first paragraph, ``Args``/``Attributes``/``Returns``/``Raises``);
classes also list the public methods and properties they define themselves
(not those inherited from ``mindspore.nn.Cell``). The output depends only on the
source, so ``tests/test_docs.py`` can compare it with the committed file.
"""

from __future__ import annotations

import enum
import inspect
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("GLOG_v", "3")

API_MD = Path(__file__).with_name("api.md")
_WIDTH = 88  # longer signatures are written one parameter per line

#: Section order and titles; a module not listed here gets a section after these.
_SECTIONS = {
    "lrp_prune.pruning.lrp": "Pruning: the Golden Stick API",
    "lrp_prune.network.gates": "Gates: one API over every gate of a model",
    "lrp_prune.network.hard_concrete": "The Hard Concrete gate",
    "lrp_prune.network.config": "Configuration",
    "lrp_prune.network.bert": "Models",
    "lrp_prune.io.saved": "Saving and loading pruned models",
    "lrp_prune.io.export": "Exporting",
    "lrp_prune.io.checkpoint": "Checkpoints",
    "lrp_prune.pruning.summary": "Summaries",
    "lrp_prune.errors": "Errors",
}
#: Names outside ``lrp_prune.__all__`` that a user of the library needs, documented in their own
#: section: (module, name). They are imported from their module.
_HELPERS = (
    ("lrp_prune.training.optim", "adamw"),
    ("lrp_prune.training.optim", "linear_schedule"),
    ("lrp_prune.data.tokenization", "PairTokenizer"),
    ("lrp_prune.data.batching", "batches"),
    ("lrp_prune.io.hf", "load_hf_bert"),
    ("lrp_prune.app.recipes", "Recipe"),
    ("lrp_prune.app.pipeline", "run_prune"),
    ("lrp_prune.app.cli", "configure_mindspore"),
)
_SECTION_NAMES = ("Args", "Arguments", "Attributes", "Returns", "Raises", "Example", "Examples", "Yields", "Note")


# ---------------------------------------------------------------------------- text helpers
def _md_inline(text: str) -> str:
    """reST inline markup of the docstrings -> Markdown."""
    text = re.sub(r":(?:class|func|meth|attr|data|mod|exc):`~?([^`]+)`",
                  lambda m: "`" + (m.group(1).split(".")[-1] if m.group(0).find("~") >= 0 else m.group(1)) + "`",
                  text)
    return text.replace("``", "`")


def _split_docstring(doc: str) -> tuple[str, dict[str, list[str]]]:
    """(summary paragraph(s) before any section, {section: lines})."""
    lines = inspect.cleandoc(doc).splitlines()
    head: list[str] = []
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        stripped = line.strip()
        if stripped.endswith(":") and stripped[:-1] in _SECTION_NAMES and not line.startswith(" "):
            current = sections.setdefault(stripped[:-1], [])
            continue
        if current is not None and stripped and not line.startswith(" ") and (not current or not current[-1].strip()):
            current = None  # an unindented paragraph after a blank line ends the section
            head.append("")
        (head if current is None else current).append(line)
    return "\n".join(head).strip(), sections


def _paragraphs(text: str) -> str:
    """Join wrapped lines into paragraphs; keep literal ``::`` blocks as code."""
    out: list[str] = []
    blocks = re.split(r"\n\s*\n", text.strip())
    literal_next = False
    for block in blocks:
        if literal_next:
            out.append("```text\n" + inspect.cleandoc(block) + "\n```")
            literal_next = False
            continue
        para = " ".join(line.strip() for line in block.splitlines())
        if para.endswith("::"):
            para = para[:-1]
            literal_next = True
        if set(para) <= {"=", " "}:  # reST table borders: keep the block as text
            out.append("```text\n" + inspect.cleandoc(block) + "\n```")
            continue
        out.append(_md_inline(para))
    return "\n\n".join(p for p in out if p)


def _items(lines: list[str]) -> str:
    """``name: text`` items with indented continuation lines -> a bullet list."""
    items: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if items and indent > 4:
            items[-1] += " " + line.strip()
        else:
            items.append(line.strip())
    rendered = []
    for item in items:
        match = re.match(r"^([\w*/ ,]+?)(\s*\([^)]*\))?:\s+(.*)$", item)
        if match:
            rendered.append(f"- `{match.group(1).strip()}`: {_md_inline(match.group(3))}")
        else:
            rendered.append(f"- {_md_inline(item)}")
    return "\n".join(rendered)


def _own_doc(obj: object) -> str | None:
    """The object's own docstring (methods do not inherit nn.Cell's)."""
    doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else None


def _render_doc(obj: object) -> str:
    doc = _own_doc(obj)
    if not doc:
        return "*(no docstring)*"
    summary, sections = _split_docstring(doc)
    parts = [_paragraphs(summary)] if summary else []
    for name in ("Args", "Arguments", "Attributes"):
        if name in sections:
            parts.append(f"**{'Args' if name == 'Arguments' else name}:**\n\n" + _items(sections[name]))
    for name in ("Returns", "Yields", "Raises", "Note"):
        if name in sections:
            parts.append(f"**{name}:** " + _paragraphs(inspect.cleandoc("\n".join(sections[name]))))
    for name in ("Example", "Examples"):
        if name in sections:  # the doctest itself (it runs in the test suite)
            code = inspect.cleandoc("\n".join(sections[name]))
            code = re.sub(r"\s*# doctest: \+\w+", "", code)
            parts.append(f"**Example:**\n\n```text\n{code}\n```")
    return "\n\n".join(parts)


# ---------------------------------------------------------------------------- signatures
def _annotation(value: object) -> str:
    if isinstance(value, str):
        return value.strip("'\"") if value[:1] in "'\"" and value[:1] == value[-1:] else value
    return inspect.formatannotation(value)


def _format_signature(name: str, sig: inspect.Signature, prefix: str = "", wrap: bool = True) -> str:
    params: list[str] = []
    seen_kw_only = False
    previous_kind = None
    for param in sig.parameters.values():
        if param.kind is inspect.Parameter.KEYWORD_ONLY and not seen_kw_only and previous_kind is not inspect.Parameter.VAR_POSITIONAL:
            params.append("*")
        if param.kind is inspect.Parameter.KEYWORD_ONLY:
            seen_kw_only = True
        previous_kind = param.kind
        text = param.name
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            text = "*" + text
        elif param.kind is inspect.Parameter.VAR_KEYWORD:
            text = "**" + text
        if param.annotation is not inspect.Parameter.empty:
            text += f": {_annotation(param.annotation)}"
        if param.default is not inspect.Parameter.empty:
            default = "<factory>" if "_HAS_DEFAULT_FACTORY" in repr(param.default) else repr(param.default)
            text += f" = {default}" if param.annotation is not inspect.Parameter.empty else f"={default}"
        params.append(text)
    ret = ""
    if sig.return_annotation is not inspect.Signature.empty:
        ret = f" -> {_annotation(sig.return_annotation)}"
    one_line = f"{prefix}{name}({', '.join(params)}){ret}"
    if not wrap or len(one_line) <= _WIDTH:
        return one_line
    body = "".join(f"    {p},\n" for p in params)
    return f"{prefix}{name}(\n{body}){ret}"


def _signature(obj: object, name: str, prefix: str = "") -> str | None:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    if inspect.isclass(obj):
        sig = sig.replace(return_annotation=inspect.Signature.empty)
    return _format_signature(name, sig, prefix)


# ---------------------------------------------------------------------------- members
def _own_members(cls: type) -> list[tuple[str, object, str]]:
    """(name, object, kind) of the public methods and properties ``cls`` defines itself."""
    out = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, property):
            out.append((name, value, "property"))
        elif isinstance(value, staticmethod):
            out.append((name, value.__func__, "staticmethod"))
        elif isinstance(value, classmethod):
            out.append((name, value.__func__, "classmethod"))
        elif inspect.isfunction(value):
            out.append((name, value, "method"))
    return out


def _method_signature(func: object, name: str, kind: str) -> str:
    sig = inspect.signature(func)
    params = list(sig.parameters.values())
    if kind in ("method", "classmethod") and params:
        sig = sig.replace(parameters=params[1:])
    prefix = {"staticmethod": "@staticmethod ", "classmethod": "@classmethod "}.get(kind, "")
    return _format_signature(name, sig, prefix, wrap=False)


def _render_class(name: str, cls: type) -> list[str]:
    out = []
    if issubclass(cls, enum.Enum):
        members = ", ".join(f"`{m.name}` (`{m.value!r}`)" for m in cls)
        out += [f"```python\nclass {name}(enum.Enum)\n```", "", _render_doc(cls), "", f"Members: {members}."]
        return out
    if issubclass(cls, BaseException):
        bases = ", ".join(b.__name__ for b in cls.__bases__)
        out += [f"```python\nclass {name}({bases})\n```", "", _render_doc(cls)]
        return out
    sig = _signature(cls, name, "class ")
    out += [f"```python\n{sig or 'class ' + name}\n```", "", _render_doc(cls)]
    members = _own_members(cls)
    if members:
        out += ["", "Members:", ""]
        for member_name, member, kind in members:
            if kind == "property":
                summary = _first_sentence(member)
                out.append(f"- `{member_name}` (property): {summary}")
            else:
                out.append(f"- `{_method_signature(member, member_name, kind)}`")
                summary = _first_sentence(member)
                if summary:
                    out[-1] += f": {summary}"
                elif member_name == "construct":
                    out[-1] += ": the forward pass (see above)."
    return out


def _first_sentence(obj: object) -> str:
    doc = _own_doc(obj)
    if not doc:
        return ""
    summary, _ = _split_docstring(doc)
    first = re.split(r"\n\s*\n", summary.strip())[0]
    return _md_inline(" ".join(line.strip() for line in first.splitlines()))


# ---------------------------------------------------------------------------- page
def render() -> str:
    """The full text of api.md for the installed ``lrp_prune``."""
    import lrp_prune

    names = list(lrp_prune.__all__)
    by_module: dict[str, list[str]] = {}
    for name in names:
        module = getattr(getattr(lrp_prune, name), "__module__", "lrp_prune")
        by_module.setdefault(module, []).append(name)
    modules = [m for m in _SECTIONS if m in by_module] + sorted(m for m in by_module if m not in _SECTIONS)

    lines = [
        "# API reference",
        "",
        "<!-- Generated by docs/gen_api.py from lrp_prune.__all__; do not edit by hand. -->",
        "",
        "Every name exported by `lrp_prune` (`from lrp_prune import ...`), grouped by the module that "
        "defines it. Signatures and summaries come from the source; after changing the public API, "
        "regenerate this page with `python docs/gen_api.py` (`tests/test_docs.py` fails while it is stale).",
        "",
        "Submodules not re-exported here but used in the tutorial: `lrp_prune.io.hf` "
        "(`load_hf_bert`, `read_hf_state`), `lrp_prune.io.assets` (`fetch_minilm`, `fetch_snli`), "
        "`lrp_prune.training` (`TrainStep`, `DynamicLossScale`, `adamw`, `linear_schedule`), "
        "`lrp_prune.io.checkpoint` (`load_param_dict`), `lrp_prune.data` (`batches`, readers), "
        "`lrp_prune.data.tokenization` (`PairTokenizer`), `lrp_prune.app` (the pipeline, recipes and CLI); "
        "[architecture.md](architecture.md) maps every module.",
        "",
        "| name | module |",
        "|---|---|",
    ]
    for module in modules:
        for name in by_module[module]:
            lines.append(f"| [`{name}`](#{name.lower()}) | `{module}` |")
    for module, name in _HELPERS:
        lines.append(f"| [`{module}.{name}`](#{name.lower()}) | `{module}` |")
    for module in modules:
        title = _SECTIONS.get(module, module)
        lines += ["", f"## {title}", "", f"Defined in `{module}`."]
        for name in by_module[module]:
            obj = getattr(lrp_prune, name)
            lines += ["", f"### {name}", ""]
            if inspect.isclass(obj):
                lines += _render_class(name, obj)
            else:
                sig = _signature(obj, name)
                lines += [f"```python\n{sig or name}\n```", "", _render_doc(obj)]
    import importlib

    lines += ["", "## Helpers a training script uses", "",
              "Not exported from `lrp_prune` itself; import each from the module named in its heading."]
    for module, name in _HELPERS:
        obj = getattr(importlib.import_module(module), name)
        lines += ["", f"### {name}", "", f"`from {module} import {name}`", ""]
        if inspect.isclass(obj):
            lines += _render_class(name, obj)
        else:
            sig = _signature(obj, name)
            lines += [f"```python\n{sig or name}\n```", "", _render_doc(obj)]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in argv:
        current = API_MD.read_text(encoding="utf-8") if API_MD.is_file() else ""
        if current != text:
            print(f"{API_MD} is stale: run python docs/gen_api.py", file=sys.stderr)
            return 1
        print(f"{API_MD} is up to date")
        return 0
    API_MD.write_text(text, encoding="utf-8")
    print(f"wrote {API_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
