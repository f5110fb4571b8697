"""Render nbs/index.ipynb to README.md (nbdev's readme needs quarto; this needs nothing).
Markdown cells are copied; code cells that are not `#| hide` become python blocks. The marker `<!-- fad_embed list -->`
becomes the output of `fad_embed list` (generated from the installed package, so the README lists every model and variant).
Usage: python .ci/readme.py [--check]   (--check: exit 1 if README.md is out of date)"""
import json, sys
from pathlib import Path

def model_listing() -> str:
    "`fad_embed list`, as a text block"
    from fad_pytorch.fad_embed import list_models
    return '```text\n$ fad_embed list\n' + list_models() + '\n```'

def render(nb_path='nbs/index.ipynb'):
    "README text from the index notebook"
    out = []
    for c in json.loads(Path(nb_path).read_text())['cells']:
        src = ''.join(c['source']).strip()
        if c['cell_type'] == 'markdown': out.append(src.replace('<!-- fad_embed list -->', model_listing()))
        elif src and not src.startswith('#| hide') and '#|hide' not in src.splitlines()[0]:
            out.append('```python\n' + src + '\n```')
    return '\n\n'.join(out) + '\n'

if __name__ == '__main__':
    text, readme = render(), Path('README.md')
    if '--check' in sys.argv:
        if readme.read_text() != text: sys.exit('README.md is out of date with nbs/index.ipynb (or with `fad_embed list`): run python .ci/readme.py')
    else: readme.write_text(text)
