"""Render nbs/index.ipynb to README.md (nbdev's readme needs quarto; this needs nothing).
Markdown cells are copied; code cells that are not `#| hide` become python blocks.
Usage: python .ci/readme.py [--check]   (--check: exit 1 if README.md is out of date)"""
import json, sys
from pathlib import Path

def render(nb_path='nbs/index.ipynb'):
    "README text from the index notebook"
    out = []
    for c in json.loads(Path(nb_path).read_text())['cells']:
        src = ''.join(c['source']).strip()
        if c['cell_type'] == 'markdown': out.append(src)
        elif src and not src.startswith('#| hide') and '#|hide' not in src.splitlines()[0]:
            out.append('```python\n' + src + '\n```')
    return '\n\n'.join(out) + '\n'

if __name__ == '__main__':
    text, readme = render(), Path('README.md')
    if '--check' in sys.argv:
        if readme.read_text() != text: sys.exit('README.md is out of date with nbs/index.ipynb: run python .ci/readme.py')
    else: readme.write_text(text)
