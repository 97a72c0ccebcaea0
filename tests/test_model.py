import numpy as np

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
        "name": "dense_1",
        "type": "Dense",
        "output_shape": "(None, 128)",
        "parameters": 100_480,
        "trainable": True,
    }


def test_cnn_maps_images_to_probabilities_with_the_expected_parameter_counts():
    model = build_model(TrainingSettings(architecture="cnn"))
    probabilities = np.asarray(model(np.zeros((2, 28, 28), np.float32)))
    assert probabilities.shape == (2, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    summary = describe_layers(model)
    # A 5x5 kernel over 1 channel into 32, then 3x3 kernels over 32 and 64 channels into 64; the
    # 3x3x64 = 576 features into 10. Strides of 2 then 1 take 28 to 12, 5 and 3.
    assert [layer.parameters for layer in summary.layers if layer.type == "Conv2D"] == [832, 18_496, 36_928]
    assert [layer.output_shape for layer in summary.layers if layer.type == "Conv2D"] == [
        (None, 12, 12, 32),
        (None, 5, 5, 64),
        (None, 3, 3, 64),
    ]
    assert [layer.parameters for layer in summary.layers if layer.type == "Dense"] == [5_770]
    assert summary.total_parameters == model.count_params() == 832 + 18_496 + 36_928 + 5_770
    assert summary.as_rows()[-1]["output_shape"] == "(None, 10)"
