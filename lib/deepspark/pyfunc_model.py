"""The code MLflow runs to load a logged deepspark model ("models from code").

Logging the wrapper as code rather than a pickled object keeps unpickling to the torch module,
and this file runs in the serving process with the model's copy of deepspark on ``sys.path``.
See :mod:`deepspark.serving`.
"""

from mlflow.models import set_model

from deepspark.serving import FeatureModel

set_model(FeatureModel())
