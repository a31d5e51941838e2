"""numpynn.estimator.MLPClassifier against scikit-learn's own estimator checks, and its API one behaviour at a time.

scikit-learn is a test dependency only: numpynn never imports it (the last test proves it in a fresh process).
"""
import inspect
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import parametrize_with_checks

from numpynn.estimator import TO_CONFIG, MLPClassifier, NotFittedError
from numpynn.config import make_config
from numpynn.train import TrainingDiverged

# Small enough for sklearn's ~55 checks to run in well under a second, big enough for check_classifiers_train's
# accuracy bar (0.83 on its three blobs).
SMALL = dict(hidden_layer_sizes=(16,), epochs=5, batch_size=32)

with warnings.catch_warnings():
    # sklearn warns that MLPClassifier does not inherit from its BaseEstimator: by design, numpynn imports no sklearn.
    warnings.filterwarnings("ignore", message=".*does not inherit from `sklearn.base.BaseEstimator`")
    # No check is expected to fail. sklearn itself skips two where the environment lacks something:
    # check_classifier_data_not_an_array without pandas, check_array_api_input without SCIPY_ARRAY_API=1.
    sklearn_checks = parametrize_with_checks([MLPClassifier(**SMALL)], expected_failed_checks=None)


@sklearn_checks
def test_sklearn_check_estimator(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def problem():
    """Three well-separated classes in 10 dimensions: 400 rows to train on, 200 to test on."""
    X, y = make_classification(n_samples=600, n_features=10, n_informative=5, n_classes=3, class_sep=2.0,
                               random_state=0)
    return X[:400], y[:400], X[400:], y[400:]


def test_fit_returns_self_and_learns_a_small_problem(problem):
    X_train, y_train, X_test, y_test = problem
    model = MLPClassifier(hidden_layer_sizes=(32,), epochs=10, batch_size=32)
    assert model.fit(X_train, y_train) is model
    assert model.score(X_test, y_test) > 0.9  # 0.965 when written
    assert model.n_features_in_ == 10 and list(model.classes_) == [0, 1, 2]
    assert len(model.history_.epochs) == 10 and model.history_.stopped == "completed"


def test_string_labels_come_back_as_themselves(problem):
    X_train, y_train, X_test, _ = problem
    names = np.array(["setosa", "cat", "dog"])
    model = MLPClassifier(**SMALL).fit(X_train, names[y_train])
    assert list(model.classes_) == ["cat", "dog", "setosa"]  # sorted, as sklearn stores them
    assert set(model.predict(X_test)) <= set(names)


def test_predict_proba_rows_sum_to_one_and_agree_with_predict(problem):
    X_train, y_train, X_test, _ = problem
    model = MLPClassifier(**SMALL).fit(X_train, y_train + 10)  # labels 10, 11, 12: not positions
    P = model.predict_proba(X_test)
    assert P.shape == (200, 3) and np.allclose(P.sum(axis=1), 1, atol=1e-6) and (P >= 0).all()
    assert (model.predict(X_test) == model.classes_[P.argmax(axis=1)]).all()
    assert model.score(X_test[:4], model.predict(X_test[:4])) == 1.0


def test_same_random_state_same_predictions_and_another_differs(problem):
    X_train, y_train, X_test, _ = problem
    P_a = MLPClassifier(**SMALL, random_state=3).fit(X_train, y_train).predict_proba(X_test)
    P_b = MLPClassifier(**SMALL, random_state=3).fit(X_train, y_train).predict_proba(X_test)
    P_c = MLPClassifier(**SMALL, random_state=4).fit(X_train, y_train).predict_proba(X_test)
    assert np.array_equal(P_a, P_b) and not np.array_equal(P_a, P_c)


def test_defaults_are_the_mlp_presets():
    """MLPClassifier() trains as `numpynn train` does by default: TrainConfig's defaults with the mlp preset's
    changes (lr 0.1 and label smoothing 0.1, not TrainConfig's bare 0.05 and 0), and help() says so."""
    preset = make_config("mlp")
    for name, parameter in inspect.signature(MLPClassifier).parameters.items():
        if name in ("verbose", "calibration_fraction"):  # not training options: what fit prints, what it holds out
            continue
        field = TO_CONFIG.get(name, name)
        if name == "weight_decay":  # None: the optimizer's own, which for the preset's SGD is the preset's 0
            assert parameter.default is None and preset.weight_decay == 0.0
        else:
            assert parameter.default == getattr(preset, field), name
    assert MLPClassifier().lr == 0.1 and MLPClassifier().label_smoothing == 0.1
    assert MLPClassifier()._config() == preset
    assert "mlp preset" in MLPClassifier.__doc__ and "lr 0.1" in MLPClassifier.__doc__
    assert "calibration_fraction" in MLPClassifier.__doc__  # the one difference from the preset, and why


def test_get_params_set_params_round_trip_and_clone():
    model = MLPClassifier(**SMALL)
    params = model.get_params()
    assert params["hidden_layer_sizes"] == (16,) and params["lr"] == make_config("mlp").lr
    assert model.set_params(lr=0.01, optimizer="adam") is model
    assert model.get_params() == {**params, "lr": 0.01, "optimizer": "adam"}
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(ValueError, match="Invalid parameter 'learning_rate'"):
        model.set_params(learning_rate=0.1)


def test_bad_hyperparameters_are_refused_by_fit_in_this_class_names(problem):
    X_train, y_train, _, _ = problem
    model = MLPClassifier(hidden_layer_sizes=(0,))  # the constructor accepts anything, as sklearn's rule asks
    with pytest.raises(ValueError, match=r"hidden_layer_sizes = \(0,\) is out of range"):
        model.fit(X_train, y_train)
    with pytest.raises(ValueError, match="lr = -1.0 is out of range"):
        MLPClassifier(lr=-1.0).fit(X_train, y_train)


def test_predicting_before_fit_raises_not_fitted_error(problem):
    with pytest.raises(NotFittedError, match="not fitted yet") as caught:
        MLPClassifier().predict(problem[2])
    assert isinstance(caught.value, (ValueError, AttributeError, SklearnNotFittedError))


def test_divergence_stops_fit_with_a_clear_error(problem):
    X_train, y_train, _, _ = problem
    with pytest.raises(TrainingDiverged, match="became (nan|inf)"):
        MLPClassifier(hidden_layer_sizes=(8,), epochs=3, lr=1e6, momentum=0.0).fit(X_train * 1000, y_train)


def test_grid_search_drives_it_with_numpy_numbers(problem):
    X_train, y_train, _, _ = problem
    grid = {"epochs": np.array([2, 4]), "hidden_layer_sizes": [(8,)]}  # np.int64 epochs, as grids often give
    search = GridSearchCV(MLPClassifier(batch_size=32), grid, cv=2).fit(X_train, y_train)
    assert search.best_params_["epochs"] in (2, 4)


def test_numpynn_runs_without_importing_sklearn():
    code = """if True:
        import sys
        import numpy as np
        from numpynn.estimator import MLPClassifier, NotFittedError
        X = np.random.default_rng(0).normal(size=(40, 3)); y = (X[:, 0] > 0).astype(int)
        try:
            MLPClassifier().predict(X)
            raise AssertionError("predict before fit did not raise")
        except NotFittedError as error:
            assert type(error) is NotFittedError  # numpynn's own class: sklearn is not there to join
        MLPClassifier(hidden_layer_sizes=(4,), epochs=2).fit(X, y).predict(X)
        assert not any(name.split(".")[0] == "sklearn" for name in sys.modules), "numpynn imported sklearn"
    """
    subprocess.run([sys.executable, "-c", code], check=True)
