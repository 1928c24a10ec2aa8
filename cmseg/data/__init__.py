"""Datasets: readers of the field's real on-disk layouts and the checker behind ``cmseg data check``.

* :mod:`cmseg.data.formats` reads each public dataset as it ships (one module per layout family);
* :mod:`cmseg.data.check` walks a dataset and lists every problem at once;
* :mod:`cmseg.data.safe_pickle` loads the RefCOCO ``refs(*).p`` pickles without running code.

Nothing in this package imports torch: readers are plain classes with ``__len__`` and
``__getitem__`` returning dicts of numpy arrays, which ``torch.utils.data.DataLoader`` accepts.
"""
