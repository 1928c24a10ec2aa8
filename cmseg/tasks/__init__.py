"""Task glue: how each task builds its training run, preprocesses inputs and postprocesses
outputs. One module per task (``sod.py``, ...), imported lazily by ``cmseg train`` (through
:data:`cmseg.engine.tasks.TASK_BUILDERS`) and by the predictors, so that commands which run
no model never import torch.
"""
