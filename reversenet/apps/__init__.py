"""The applications built on the core: the eight-variant grid, the bottleneck report,
segmentation and its evaluation, the randomisation test, fully convolutional heads."""
