"""Model export: ``onnx_export`` (package -> one .onnx with recipe + Deepness metadata), ``quantize``
(int8 static quantization), ``gate`` (calibration chips and the task metric of the quality gate)."""
