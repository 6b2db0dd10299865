"""Training tasks: data loaders, simulators, the task registry, presets and one trainer for every model.

* data: :mod:`~eqbench.tasks.rotmnist` (``.amat`` files and the rotated-digits stand-in),
  :mod:`~eqbench.tasks.qm9` (raw ``.xyz`` files and qm9pack CSVs), :mod:`~eqbench.tasks.nbody`
  (charged n-body simulator), :mod:`~eqbench.tasks.images` (rotated / scrambled image variants);
  parsed or simulated data is cached by :mod:`~eqbench.tasks.datafiles`;
* :mod:`~eqbench.tasks.registry`: ``TASKS[name]`` builds a task's data and names its objective
  (:mod:`~eqbench.tasks.objectives`) and trivial baseline;
* :mod:`~eqbench.tasks.trainable`: ``TRAINABLE[(task, model)]`` builds the model;
  :mod:`~eqbench.tasks.presets`: ``paper`` and ``small`` hyperparameters per (task, model);
* :mod:`~eqbench.tasks.trainer`: ``train(TrainConfig(...))`` with checkpoints
  (:mod:`~eqbench.tasks.checkpoint`), result tables (:mod:`~eqbench.tasks.results`) and
  torchrun support (:mod:`~eqbench.tasks.distributed`); ``eqbench train`` is its command line.

Submodules are imported on demand, so ``import eqbench.tasks`` stays cheap.
"""
