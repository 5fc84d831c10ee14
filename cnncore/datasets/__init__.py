"""Dataset sources behind `cnncore.data`: generated shapes, published files, uploaded zips,
and augmentation of image batches."""
