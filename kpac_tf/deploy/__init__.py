"""Using a model: the one loader (`loading`), the photo deblurrer (`deblurring`), tiles
for large photos (`tiling`), folders of photo files (`photo_files`), a photo's blur
map (`blur_map`), SavedModel / LiteRT / ONNX exports (`export`), the bundled weights
(`bundled`, `weights/`) and the gate that ships them (`shipping`). May import every part
below it; nothing below imports it."""
