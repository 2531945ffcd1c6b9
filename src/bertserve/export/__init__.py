"""Turning run folders into a served version folder: the version writer (`version`, the entry
point), the graph of one run (`graph`: torch -> ONNX in `onnx`, OpenVINO IR in `openvino`), its
checks (`parity` with torch; `accuracy` on the run's dev split from `dev_split`), int8
calibration texts (`calibration`) and ensembles of runs (`ensemble`)."""
