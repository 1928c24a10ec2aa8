"""The ``rvos`` task: referring video object segmentation (SOC / SOC++). Evaluation is built
(J&F with the DAVIS, MeViS and Ref-YouTube-VOS conventions, and A2D-/JHMDB-Sentences mAP);
the model, training, prediction and demo are not yet."""
