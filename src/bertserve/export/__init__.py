"""Turning a run folder into a served version folder: the version writer (`version`), the
OpenVINO IR writer (`openvino`) and int8 calibration texts (`calibration`)."""
