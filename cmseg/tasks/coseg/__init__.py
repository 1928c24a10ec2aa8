"""The ``coseg`` task: object co-segmentation of an image group (SSNM). Evaluation is built;
the model, training, prediction and demo are not yet."""
