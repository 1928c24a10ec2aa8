"""The ``fsrvos`` task: few-shot referring video object segmentation (CMA). Evaluation is
built; the model, training, prediction and demo are not yet."""
