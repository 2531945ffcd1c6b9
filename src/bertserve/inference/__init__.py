"""Running an exported version folder: the loader (`model.ExportedModel`), the engines behind it
(`engines`: ONNX Runtime, OpenVINO), fixed padded shapes (`padded_shapes`), and the folder's
manifest and signature checks (`manifest`, `signature`). Never imports torch."""
