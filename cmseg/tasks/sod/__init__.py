"""The ``sod`` task: salient and camouflaged object segmentation from RGB + depth or thermal
(XMSNet). Kept empty so that importing one part (the torch-free ``evaluate``) loads no other."""
