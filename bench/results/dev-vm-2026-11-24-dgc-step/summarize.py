# Medians over runs of the per-run, per-phase medians in run.sh's JSON: python3 summarize.py [DIR]
import json, glob, statistics as st, sys
O=sys.argv[1] if len(sys.argv) > 1 else 'bench/results/dev-vm-2026-11-24-dgc-step'
phases=['finite_ms','compensate_ms','threshold_ms','scan_ms','mask_ms','encode_ms','total_ms']
def load(pat):
    return [json.load(open(f)) for f in sorted(glob.glob(f'{O}/{pat}'))]
for kind in ['single','pair']:
  for t in [1,2]:
    runs=load(f'{kind}_t{t}_r*.json')
    print(f'\n### {kind} t={t}: {len(runs)} runs (median of per-run medians)')
    print('| fused | n | '+' | '.join(p.replace('_ms','') for p in phases)+' | rounds | full | list | listed |')
    print('|---|---:|'+'---:|'*(len(phases)+4))
    for fi,fname in enumerate(['off','on']):
      for ti in range(2):
        rows=[r['runs'][fi]['tensors'][ti] for r in runs]
        assert all(r['runs'][fi]['fused']==(fi==1) for r in runs)
        vals=[st.median(x[p] for x in rows) for p in phases]
        extra=[st.mean(x[k] for x in rows) for k in ['rounds_mean','full_scans_mean','list_scans_mean','listed_mean']]
        print(f"| {fname} | {rows[0]['n']} | "+' | '.join(f'{v:.3f}' for v in vals)+f" | {extra[0]:.2f} | {extra[1]:.2f} | {extra[2]:.2f} | {extra[3]:.0f} |")
    for fi,fname in enumerate(['off','on']):
      tot=[r['runs'][fi]['step_total_ms'] for r in runs]
      print(f'step total {fname}: median {st.median(tot):.3f} ms (runs: '+', '.join(f'{x:.2f}' for x in tot)+')')
