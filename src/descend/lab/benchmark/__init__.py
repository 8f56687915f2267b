"""``descend benchmark``: optimizers compared over several workloads with a fair tuning budget
(AlgoPerf's protocol at CPU scale). See ``command`` for the command line; the parts are
``workloads``, ``spaces``, ``config``, ``storage`` (Optuna), ``worker``, ``trial``,
``scoring``, ``results``, ``findings``, ``figures`` and ``report``."""
