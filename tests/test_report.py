"""fad_score --report as users run it, opened in a real browser (headless Chromium, the Debian package .ci/setup installs).

Generated audio: a reference of filtered noise, an evaluated set of the same kind with planted faults (two silent files,
two clipped ones, two pure tones as outliers, one file too short for a per-file FAD) and a second evaluated set of
another colour. fad_embed (logmel, weight-free) records the audio facts; fad_score writes the report. The browser
loads a copy of index.html with a small script added (the report itself has none) that writes into the DOM each
image's natural size and each player's decoded duration; `--dump-dom` prints that DOM, and the test reads it:
every image loads at the size of its PNG, every player plays its source file, every tagged number on the page equals
report.json's value at its place, and report.json's scores equal `fad_score --json`'s.
"""
import csv, json, math, os, shutil, struct, subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote
import numpy as np, pytest, soundfile as sf
from util import run
from fad_pytorch.report import REPORT_HTML, REPORT_JSON, fmt, lookup

SR = 16000
SILENT, CLIPPED, TONES, SHORT = ('silent_a.wav', 'silent_b.wav'), ('clip_a.wav', 'clip_b.wav'), ('tone_a.wav', 'tone_b.wav'), 'short.wav'
CHECK = """<script>
window.addEventListener('load', () => {
  for (const i of document.images) i.setAttribute('data-natural', i.naturalWidth + 'x' + i.naturalHeight);
});
for (const a of document.querySelectorAll('audio')) {
  a.addEventListener('loadedmetadata', () => a.setAttribute('data-duration', a.duration));
  a.addEventListener('error', () => a.setAttribute('data-error', a.error ? a.error.code : '?'));
  a.preload = 'metadata'; a.load();
}
</script>"""


def noise(g, seconds, pole):
    "Low-passed noise, RMS about −15 dBFS (a larger pole: darker), never near full scale"
    from scipy.signal import lfilter
    x = lfilter([1.0], [1.0, -pole], g.standard_normal(int(seconds * SR)))
    return (0.18 * x / x.std()).astype(np.float32)


def write_sets(d:Path):
    g = np.random.default_rng(0)
    for name, pole in (('ref', 0.9), ('gen', 0.9), ('other', 0.98)):
        (d / name).mkdir()
        for i in range(32 if name != 'gen' else 25):
            sf.write(d / name / f'{i:02d}.wav', noise(g, 3, pole), SR)
    t = np.arange(3 * SR) / SR
    sf.write(d / 'gen' / SILENT[0], np.zeros(3 * SR, np.float32), SR)                               # digital silence
    sf.write(d / 'gen' / SILENT[1], (1e-5 * g.standard_normal(3 * SR)).astype(np.float32), SR)     # −100 dBFS hiss
    for name in CLIPPED: sf.write(d / 'gen' / name, np.clip(noise(g, 3, 0.9) * 20, -1, 1), SR, subtype='PCM_16')
    for name, f in zip(TONES, (3000, 5000)): sf.write(d / 'gen' / name, (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32), SR)
    sf.write(d / 'gen' / SHORT, noise(g, 0.6, 0.9), SR)


@pytest.fixture(scope='module')
def sets(tmp_path_factory):
    d = tmp_path_factory.mktemp('report')
    write_sets(d)
    r = run('fad_embed', 'logmel', d / 'ref', d / 'gen', d / 'other', '--num-workers', 0)
    assert 'audio flags' in r.stderr and '2 silent' in r.stderr and '2 clipped' in r.stderr and '1 short' in r.stderr
    return d


def browser():
    "A headless Chromium, or None"
    exe = os.environ.get('FAD_CHROMIUM')
    return exe or next((shutil.which(n) for n in ('chromium-headless-shell', 'chromium', 'chromium-browser') if shutil.which(n)), None)


class Dom(HTMLParser):
    "Tagged numbers, images, players and the text of every table cell of a page"
    def __init__(self):
        super().__init__(); self.keys, self.imgs, self.audio, self.scripts, self.stack, self.tables, self.cell = [], [], [], 0, [], [], None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == 'script': self.scripts += 1
        if tag == 'table': self.tables.append([])
        if tag == 'tr': self.tables[-1].append([])
        if tag in ('td', 'th'): self.cell = ''
        if tag == 'img': self.imgs.append(a)
        if tag == 'audio': self.audio.append(a)
        if tag in ('img', 'audio', 'br', 'meta'): return
        self.stack.append(a.get('data-key'))
        if a.get('data-key'): self.keys.append([a['data-key'], ''])
    def handle_endtag(self, tag):
        if tag not in ('img', 'audio', 'br', 'meta') and self.stack: self.stack.pop()
        if tag in ('td', 'th'): self.tables[-1][-1].append(self.cell); self.cell = None
    def handle_data(self, data):
        if self.stack and self.stack[-1]: self.keys[-1][1] += data
        if self.cell is not None: self.cell += data


def parse(text:str) -> Dom:
    p = Dom(); p.feed(text); return p


def open_in_browser(report:Path) -> Dom:
    "The report's DOM after a headless Chromium loaded it, its images and players"
    exe = browser()
    if exe is None:
        if os.environ.get('CI'): pytest.fail("no headless Chromium: bash .ci/setup installs the Debian package chromium-headless-shell")
        pytest.skip("no headless Chromium (apt-get install chromium-headless-shell, or set FAD_CHROMIUM)")
    page = (report / REPORT_HTML).read_text()
    check = report / 'browser_check.html'                      # beside index.html, so that relative links resolve the same
    check.write_text(page.replace('</body>', CHECK + '</body>'))
    r = subprocess.run([exe, '--headless', '--no-sandbox', '--disable-gpu', '--allow-file-access-from-files', '--virtual-time-budget=20000',
                        '--dump-dom', check.as_uri()], capture_output=True, text=True, timeout=120)
    check.unlink()
    assert r.returncode == 0 and '<html' in r.stdout, r.stderr[-2000:]
    return parse(r.stdout)


def png_size(p:Path): return struct.unpack('>II', p.read_bytes()[16:24])


def check_page(report:Path, rep:dict, dom:Dom):
    "Images load at their PNG's size, players play their source, tagged numbers equal report.json's"
    assert dom.imgs and len(dom.imgs) == len(rep['figures'])
    for img in dom.imgs:
        w, h = png_size(report / unquote(img['src']))
        assert img['data-natural'] == f'{w}x{h}' and w > 100 and h > 100, img
        assert (img['width'], img['height']) == (str(w), str(h)) and img['alt']
    for a in dom.audio:
        src = (report / unquote(a['src'])).resolve()
        assert 'data-error' not in a, a
        assert math.isclose(float(a['data-duration']), sf.info(src).duration, rel_tol=1e-3), a
    assert len(dom.keys) > 300
    for key, text in dom.keys: assert text == fmt(lookup(rep, key)), (key, text)


def test_report_in_a_browser(sets, tmp_path):
    d = sets
    emb = {s: d / f'{s}_emb_logmel' for s in ('ref', 'gen', 'other')}
    man = json.loads((emb['gen'] / 'manifest.json').read_text())
    assert man['files'][SILENT[0]]['audio']['flags'] == ['silent'] and man['files'][CLIPPED[0]]['audio']['flags'] == ['clipped']
    assert man['files'][SHORT]['audio']['flags'] == ['short'] and man['summary']['flagged'] == {'silent': 2, 'clipped': 2, 'short': 1}
    rd = tmp_path / 'rep'
    args = [emb['ref'], emb['gen'], emb['other'], '--bootstrap', 50, '--inf', '--inf-steps', 5]
    r = run('fad_score', *args, '--json', '--report', rd)
    assert f"saved {rd / REPORT_HTML}" in r.stderr
    out, rep = json.loads(r.stdout), json.loads((rd / REPORT_JSON).read_text())
    assert [s['result'] for s in rep['sets']] == out['results']                 # the same numbers as --json, every key
    assert rep['reference'] == {**out['reference'], 'spectrum': rep['reference']['spectrum'], 'flags': rep['reference']['flags']}
    gen = rep['sets'][0]
    far = [x['file'] for x in gen['per_file']['farthest']]
    assert set(TONES) <= set(far) and set(SILENT) <= set(far) and set(CLIPPED) <= set(far), far
    assert gen['per_file']['without_fad'] == 1                                  # the short file: one frame
    flagged = {f['file']: f['flags'] for f in gen['flags']['flagged']}
    assert flagged == {SILENT[0]: ['silent'], SILENT[1]: ['silent'], CLIPPED[0]: ['clipped'], CLIPPED[1]: ['clipped'], SHORT: ['short']}
    assert gen['flags']['shares']['silent'] == 2 / 32 and rep['sets'][1]['flags']['counts'] == {'silent': 0, 'clipped': 0, 'short': 0}
    labelled = {o['file'] for o in rep['map']['groups'][1]['outliers']}
    assert labelled & (set(TONES) | set(SILENT) | set(CLIPPED)) and len(labelled) == 5
    assert all(s['bootstrap']['matches_interval'] for s in rep['sets'])
    assert rep['comparison']['rows'][0]['value'] <= rep['comparison']['rows'][1]['value']
    assert {m['part'] for m in rep['missing']} == set()
    dom = open_in_browser(rd)
    assert dom.scripts == 1                                                     # ours: the report itself has none
    assert parse((rd / REPORT_HTML).read_text()).scripts == 0
    check_page(rd, rep, dom)
    # what the page shows under each label, against fad_score's own outputs (--json, --per-file), formatted here
    g6 = lambda v: f"{v:.6g}"
    scores = {row[0]: row[1:] for row in dom.tables[0]}
    assert scores[''] == ['gen_emb_logmel', 'other_emb_logmel']
    for i, res in enumerate(out['results']):
        for lab, side, k in (('evaluated files', 'fake', 'files'), ('evaluated frames', 'fake', 'n'), ('reference files', 'real', 'files'), ('reference frames', 'real', 'n')):
            assert scores[lab][i] == str(res[side][k]), lab
        for k in ('fad', 'mean_term', 'trace_term', 'fad_ci_low', 'fad_ci_high', 'fad_inf'): assert scores[k][i] == g6(res[k]), k
    run('fad_score', emb['ref'], emb['gen'], '--per-file', tmp_path / 'pf.csv')
    rows = sorted((r for r in csv.DictReader(open(tmp_path / 'pf.csv')) if r['fad']), key=lambda r: -float(r['fad']))[:10]
    shown = next(t for t in dom.tables if t[0][:2] == ['file', 'FAD'])
    assert [(r[0], r[1]) for r in shown[1:]] == [(r['file'], g6(float(r['fad']))) for r in rows]
    players = {unquote(a['src']).rsplit('/', 1)[-1] for a in dom.audio}
    assert set(TONES) | set(SILENT) | set(CLIPPED) <= players
    text = (rd / REPORT_HTML).read_text()
    assert 'http' not in text.replace('http-equiv', '') and 'src="/' not in text  # nothing from the network, no absolute paths


def test_compare_and_statistics_files(sets, tmp_path):
    d = sets
    emb = {s: d / f'{s}_emb_logmel' for s in ('ref', 'gen', 'other')}
    rd = tmp_path / 'ab'
    out = json.loads(run('fad_score', emb['ref'], emb['gen'], emb['other'], '--compare', '--bootstrap', 50, '--json', '--report', rd).stdout)
    rep = json.loads((rd / REPORT_JSON).read_text())
    assert rep['ab']['fad_diff'] == out['fad_diff'] and rep['ab']['pairing'] == out['pairing'] == 'unpaired'
    assert [s['result'] for s in rep['sets']] == [out['a'], out['b']] and rep['ab_bootstrap']['matches_interval']
    check_page(rd, rep, open_in_browser(rd))
    # statistics files: what can be shown is, the rest is named with its reason
    run('fad_stats', emb['ref'], '-o', tmp_path / 'ref.npz'); run('fad_stats', emb['gen'], '-o', tmp_path / 'gen.npz')
    rs = tmp_path / 'stats'
    r = run('fad_score', tmp_path / 'ref.npz', emb['gen'], '--json', '--report', rs)
    rep = json.loads((rs / REPORT_JSON).read_text())
    assert rep['sets'][0]['result']['fad'] == json.loads(r.stdout)['fad']
    assert 'split' in rep['sets'][0] and rep['reference']['spectrum']['effective_rank'] > 1 and 'per_file' in rep['sets'][0]
    assert [g['name'] for g in rep['map']['groups']] == ['gen_emb_logmel']
    assert {m['part'] for m in rep['missing']} >= {'map', 'flags'} and 'not in it: ' in r.stderr
    rs2 = tmp_path / 'stats2'
    r = run('fad_score', tmp_path / 'ref.npz', tmp_path / 'gen.npz', '--report', rs2)
    rep = json.loads((rs2 / REPORT_JSON).read_text())
    why = {m['part']: m['why'] for m in rep['missing']}
    assert 'statistics file' in why['per_file'] and 'statistics file' in why['map'] and 'map' not in rep
    assert 'split' in rep['sets'][0] and 'spectrum' in rep['sets'][0]
    dom = open_in_browser(rs2)
    check_page(rs2, rep, dom)
    assert 'statistics file' in (rs2 / REPORT_HTML).read_text()


def test_without_matplotlib(sets, tmp_path):
    "A clear message, no traceback, nothing written, when matplotlib is missing"
    fake = tmp_path / 'no_mpl' / 'matplotlib'
    fake.mkdir(parents=True)
    (fake / '__init__.py').write_text("raise ImportError('matplotlib is hidden by this test')\n")
    emb = sets / 'ref_emb_logmel'
    r = run('fad_score', emb, sets / 'gen_emb_logmel', '--report', tmp_path / 'r', check=False, env={'PYTHONPATH': str(fake.parent)})
    assert r.returncode != 0 and "pip install 'fad_pytorch[report]'" in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert not (tmp_path / 'r').exists()
