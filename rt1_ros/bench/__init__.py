"""rt1-bench: control-step latency, training throughput, memory, node overhead and a profile of RT-1.

    rt1-bench [--smoke] [--output bench.json] [--config config/bench.yaml] [--sections latency,node,...]
    python -m rt1_ros.bench --smoke

Sections (each one a key of the JSON written to --output, and a block of the printed table; one module each,
whose function returns a typed result that writes its own JSON (`as_dict`) and table lines (`format`)):
- machine (`machine.py`): CPU, cores, load average before/after, torch and its thread count; other engineers'
  jobs share this CPU, so every latency is reported as median / p90 / p99 and with the load it was taken under;
- latency (`latency.py`): per model size, the cached control step (`RT1Policy.select_action`: encode the newest frame,
  transformer over the cached window) vs the full 6-frame recompute (`RT1.forward`), on the eager reference and
  on the optimised path (`rt1_ros.inference.paths`), with their tokens compared step by step;
  plus a thread sweep;
- backends (`backends.py`): the cached control step on torch (BatchNorm folded, channels-last), ONNX Runtime and
  OpenVINO side by side in interleaved rounds, on the shipped trained model (tokens checked on simulator frames)
  and the paper size, per thread count: ratios to torch, token agreement, input dependence, and the fastest
  backend with identical tokens (what `inference_backend: auto` runs on x86);
- throughput (`throughput.py`): training-shaped batches (B,6,3,S,S), forward + cross-entropy + backward,
  samples/s;
- memory (`measurement.py`): peak RSS of each section (VmHWM, reset between sections); CUDA max allocated when
  on a GPU;
- node (`node.py`): image message in → Twist out over real topics (rclpy, Fast DDS, a peer node in the same
  process), minus the model time the node reports in rt1_action.inference_ms = node overhead;
- lucidrains (`lucidrains.py`): `robotic-transformer-pytorch` (MaxViT RT-1, its README configuration) at the
  same batch and frames, when importable; "not installed" otherwise;
- cuda (`cuda.py`): eager / torch.compile / CUDA graphs × fp32 / bf16 / fp16, token agreement with fp32, the
  fastest correct path; skipped without CUDA;
- profile (`profiling.py`): where a paper-size control step spends its time (stem, MBConv stages, FiLM, token
  learner, transformer, heads), from forward hooks, plus torch.profiler's top operators.

The targets the results are judged against are in `targets.py`; `report.py` assembles the JSON and the table,
`cli.py` is the entry point.

Times are wall clock (`perf_counter`). With one intra-op thread the CPU time of the calling thread is reported
too: it is what the step costs when the CPU is not shared, so it separates our cost from the neighbours' load.
"""
