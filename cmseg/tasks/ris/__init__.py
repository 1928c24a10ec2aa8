"""The ``ris`` task: referring image segmentation, one image and one sentence -> one mask
(CMPC). Kept empty so that importing one part (the torch-free ``evaluate``) loads no other."""
