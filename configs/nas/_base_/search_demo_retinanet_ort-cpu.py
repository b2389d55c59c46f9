# The demo search settings (search_demo_ort-cpu.py) with the pruning model of the RetinaNet
# demo detector: its latency predictor is committed for this target (the RTMDet and YOLOX
# demo searches keep the analytic proxy and the features model of the shared base).
_base_ = ['./search_demo_ort-cpu.py']

# pruning model: the committed predictor of this detector and target (fitted on 100 random
# 256 px detectors; used at the search's 128 px), re-anchored on this machine by the ratio
# model (intercept + slope * predictor) refitted from every measurement. Replayed on seven
# demo searches' journals it predicted their re-timed latencies within 3.2 % after 10
# measurements, against 5.3 % for the features model refitted from the search's own
# measurements (docs/search_fidelity.md, benchmarks/results/refit_demo_journals.json).
predictor = dict(
    path='gpunet_mm/deploy/data/predictor_demo_ort_cpu.json',
    refit=dict(models=['anchor']),
)
