"""Federated learning on Flower: what a site trains and what of it may leave.

:mod:`model` is the model (logistic regression in numpy, no downloaded weights) and a site's
cohort; :mod:`client` is the Flower ``ClientApp`` that trains and evaluates it on local data;
:mod:`limits` decides from the site's own settings whether a run may join and with which
privacy; :mod:`wire` turns Flower message content into the JSON the federation channel carries
and checks it holds only the declared tensors and metrics; :mod:`grid` is a Flower ``Grid``
whose messages travel through openjip's signed federation channel; :mod:`coordinator` runs the
Flower strategy over it and :mod:`participant` serves one site's side of the rounds.

Images and headers never enter these modules' messages: they see feature vectors and labels.
"""
