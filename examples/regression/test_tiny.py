"""Did a refactor or a retraining change what the tiny CNN looks at? Its reversed pictures
against the baselines in reversenet_baselines/ (write them with `pytest --reversenet-generate`)."""

from tiny import tiny_cnn

import reversenet


def test_the_variants_at_the_last_feature_map(reversenet_regression):
    """The whole map reversed (select full): pictures over the whole photo."""
    reversenet_regression.check(tiny_cnn(), reversenet.sample_image(), variants=["deconvnet", "salinet", "desalinet"],
                                select="full")


def test_the_two_strongest_neurons_of_the_second_pooling(reversenet_regression):
    reversenet_regression.check(tiny_cnn(), reversenet.sample_image(), layers=["5"], select="topk:2", render="gamma")
