"""One control step of a trained RT-1, on any backend: camera image to model frame (`image_decoding`), the cached
frame tokens of the last 6 frames (`frame_history`), the options (`options`), an inference-ready copy of the model
(`model_preparation`), the paths that run its two calls behind one `InferencePath` protocol (`paths`; ONNX exports
in `onnx_export`, ONNX Runtime and OpenVINO in `onnx_backends`) and their parity checks (`parity`).

Above `model`, below `policy`; no ROS."""
