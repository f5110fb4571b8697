#!/usr/bin/env bash
# The main job on a small generated example: set up .venv, write example audio, embed it, score it.
# Usage: bash examples/demo.sh [MODEL]    MODEL defaults to logmel (weight-free); with weights at hand (see the
# README, "Weights"), try vggish, pann, clap or openl3.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-logmel}
bash .ci/setup --no-ref
V=${FAD_VENV:-.venv}; export PATH="$PWD/$V/bin:$PATH"
W=${FAD_DEMO_DIR:-demo_out}
python examples/make_example.py "$W" --n 24 --seconds 4
fad_embed "$MODEL" "$W/real" "$W/fake_close" "$W/fake_far" --out "$W/emb"
tag=${MODEL//:/-}
echo "FAD real vs fake_close: $(fad_score "$W/emb/real_emb_$tag" "$W/emb/fake_close_emb_$tag" 2>/dev/null)"
echo "FAD real vs fake_far:   $(fad_score "$W/emb/real_emb_$tag" "$W/emb/fake_far_emb_$tag" 2>/dev/null)"
fad_score "$W/emb/real_emb_$tag" "$W/emb/fake_far_emb_$tag" --json > "$W/score_far.json"
echo "Both sets against real/, with KAD and 95 % bootstrap intervals (files resampled), and a diagnostics report:"
fad_score "$W/emb/real_emb_$tag" "$W/emb/fake_close_emb_$tag" "$W/emb/fake_far_emb_$tag" --metrics fad,kad \
  --bootstrap 200 --seed 0 --report "$W/report"
echo "details: $W/score_far.json; report: $W/report/index.html; embeddings and manifests: $W/emb/"
