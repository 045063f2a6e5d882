"""Build a notebook from a plain-text cell list: `python .dev/mknb.py src.py out.ipynb`.

Cells are separated by lines `# %%` (code) or `# %% [markdown]` (markdown; lines start with `# `).
"""
import sys

import nbformat

src, out = sys.argv[1], sys.argv[2]
cells = []
kind, buf = None, []


def flush():
    if kind is None:
        return
    text = "\n".join(buf).strip("\n")
    if kind == "md":
        text = "\n".join(l[2:] if l.startswith("# ") else l.lstrip("#") for l in text.splitlines())
        cells.append(nbformat.v4.new_markdown_cell(text))
    else:
        cells.append(nbformat.v4.new_code_cell(text))


for line in open(src, encoding="utf-8").read().splitlines():
    if line.startswith("# %% [markdown]"):
        flush(); kind, buf = "md", []
    elif line.startswith("# %%"):
        flush(); kind, buf = "code", []
    else:
        buf.append(line)
flush()
nb = nbformat.v4.new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
nbformat.write(nb, out)
print(f"wrote {out}: {len(cells)} cells")
