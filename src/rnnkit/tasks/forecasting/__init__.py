"""Time-series forecasting with an LSTM/GRU (Chainer's sine-wave examples, grown up).

Data (:mod:`rnnkit.data.series`): a built-in series (``co2``, ``sunspots``, ``sine``) or a CSV/NumPy
file, univariate or multivariate. The last ``horizon`` steps are the test split, the ``horizon``
steps before them the validation split; each is *one* forecast of ``horizon`` steps from the
history before it (the rest of the series), as in the M-competitions. The model sees
``scaler(transform(y))`` (``transform``: none, diff, seasonal_diff; the scaler fitted on the
training part only) and is trained on every window of ``input_len`` inputs and ``horizon``
targets that lies inside the training part.

Modes: ``direct`` -- the recurrent layer reads the window and one linear layer emits all
``horizon x targets`` values at once (the MIMO strategy, Ben Taieb et al. 2012); ``autoregressive``
-- the layer predicts the next step at every position (teacher forcing, Chainer's example) and the
forecast feeds each prediction back. ``ensemble`` > 1 trains several members (different initial
weights) side by side and averages their forecasts.

Metrics: MAE, RMSE and MASE (Hyndman & Koehler 2006: MAE over the in-sample MAE of the seasonal
naive forecast with period ``period`` on the history), beside the baselines: seasonal naive,
seasonal naive with yearly drift (last season + k x the mean change over the last season), and
statsmodels' ETS(A,A,A) (Holt-Winters) and SARIMA(1,1,1)(0,1,1,m) fitted to the same history.

Modules: :mod:`.config` (settings, presets), :mod:`.model`, :mod:`.data` (series, batches),
:mod:`.metrics`, :mod:`.baselines`, :mod:`.plots`, :mod:`.task` (:class:`ForecastTask`).
"""

from .baselines import baseline_forecasts, seasonal_naive
from .config import LOSSES, MODES, PRESETS, ForecastConfig
from .metrics import forecast_errors, mase_scale
from .model import Forecaster
from .plots import plot_forecast
from .task import SPLITS, ForecastTask

__all__ = [
    "LOSSES",
    "MODES",
    "PRESETS",
    "SPLITS",
    "ForecastConfig",
    "ForecastTask",
    "Forecaster",
    "baseline_forecasts",
    "forecast_errors",
    "mase_scale",
    "plot_forecast",
    "seasonal_naive",
]
