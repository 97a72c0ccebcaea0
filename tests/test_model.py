import numpy as np
from tensorflow import keras

from mnist_model.model import build_model, describe_layers
from mnist_model.settings import TrainingSettings


def test_mlp_is_the_classic_network_layer_for_layer():
    model = build_model(TrainingSettings())
    layers = model.layers
    assert [type(layer).__name__ for layer in layers] == ["Flatten", "Dense", "Dense", "Dense"]
    assert [layer.units for layer in layers[1:]] == [128, 128, 10]
    assert [layer.activation.__name__ for layer in layers[1:]] == ["relu", "relu", "softmax"]
    assert model.input_shape == (None, 28, 28)


def test_summary_counts_match_keras_and_the_arithmetic():
    model = build_model(TrainingSettings())
    summary = describe_layers(model)
    # 784*128+128, 128*128+128, 128*10+10
    assert [layer.parameters for layer in summary.layers] == [0, 100_480, 16_512, 1_290]
    assert summary.total_parameters == model.count_params() == 118_282
    assert summary.non_trainable_parameters == 0
    assert summary.as_rows()[1] == {
        "name": layers_name(model, 1),
        "type": "Dense",
        "output_shape": "(None, 128)",
        "parameters": 100_480,
        "trainable": True,
    }


def layers_name(model: keras.Model, index: int) -> str:
    return model.layers[index].name


def test_cnn_maps_images_to_probabilities_with_the_expected_parameter_counts():
    model = build_model(TrainingSettings(architecture="cnn"))
    probabilities = np.asarray(model(np.zeros((2, 28, 28), np.float32)))
    assert probabilities.shape == (2, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    summary = describe_layers(model)
    # 3x3 kernels over 1 then 32 channels; 5x5x64 = 1600 features into 128 units; 128 into 10.
    assert [layer.parameters for layer in summary.layers if layer.type == "Conv2D"] == [320, 18_496]
    assert [layer.parameters for layer in summary.layers if layer.type == "Dense"] == [204_928, 1_290]
    assert summary.total_parameters == model.count_params() == 320 + 18_496 + 204_928 + 1_290
    assert summary.as_rows()[-1]["output_shape"] == "(None, 10)"
