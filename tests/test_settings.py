import pytest

from mnist_model.settings import TrainingSettings


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "epochs must be from 1"),
        ("epochs", 2.5, "epochs must be a whole number"),
        ("batch_size", -32, "batch_size must be from 1"),
        ("architecture", "transformer", "architecture must be one of mlp, cnn"),
        ("strategy", "tpu", "strategy must be one of default, mirrored"),
        ("learning_rate", 0.0, "learning_rate must be greater than 0"),
        ("learning_rate", float("nan"), "learning_rate must be a number"),
        ("validation_size", 0, "validation_size must be from 1"),
        ("seed", -1, "seed must be from 0"),
        ("augment", "yes", "augment must be true or false"),
    ],
)
def test_invalid_value_raises_value_error_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainingSettings(**{field: value})


def test_settings_round_trip_through_a_dict():
    settings = TrainingSettings(architecture="cnn", epochs=3, augment=True, learning_rate=1)
    assert TrainingSettings.from_dict(settings.to_dict()) == settings
    assert isinstance(settings.learning_rate, float)


def test_unknown_keys_are_refused_when_rebuilding():
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainingSettings.from_dict({"epochs": 3, "momentum": 0.9})


def test_recommended_settings_take_overrides():
    settings = TrainingSettings.recommended("cnn", epochs=2)
    assert (settings.architecture, settings.epochs, settings.augment) == ("cnn", 2, True)
    assert TrainingSettings.recommended("mlp") == TrainingSettings()


def test_default_network_trains_for_the_classic_ten_epochs():
    assert TrainingSettings().epochs == 10
    assert TrainingSettings().architecture == "mlp"


@pytest.mark.parametrize(
    ("configured", "first", "default"),
    [(None, "quick", "cnn"), ("cnn", "quick", "cnn"), ("mlp", "mlp", "mlp")],
    ids=["unset", "cnn", "mlp"],
)
def test_the_quick_dense_network_is_served_first_only_while_a_convnet_trains(monkeypatch, configured, first, default):
    if configured is None:
        monkeypatch.delenv("MNIST_DEFAULT_MODEL", raising=False)
    else:
        monkeypatch.setenv("MNIST_DEFAULT_MODEL", configured)
    expected_first = TrainingSettings.quick() if first == "quick" else TrainingSettings.recommended(first)
    assert TrainingSettings.served_first() == expected_first
    assert TrainingSettings.default() == TrainingSettings.recommended(default)


def test_the_quick_network_is_the_dense_one_trained_briefly_without_augmentation():
    quick = TrainingSettings.quick()
    assert (quick.architecture, quick.epochs, quick.augment) == ("mlp", 2, False)
    assert quick.describe() == "mlp, 2 epochs, batch 512, lr 0.003, seed 0"
