"""Bring your own model with the Python client: README's API tour shows this script verbatim, and
tests/clients/test_python_client.py runs it against the live server and a real worker."""

from lightgbm import LGBMClassifier
from mlplatform_client import Client
from sklearn.impute import SimpleImputer
from sklearn.model_selection import cross_validate
from sklearn.pipeline import make_pipeline


def main(base_url: str, token: str, experiment_id: int) -> dict:
    client = Client(base_url, token=token)
    experiment = client.experiments.get(experiment_id)
    version = client.versions.get(experiment.dataset_version)
    train = version.export(split="train").drop(columns=["_row_id", "_split"], errors="ignore")
    X, y = train.drop(columns=[experiment.target]), train[experiment.target]
    model = make_pipeline(SimpleImputer(), LGBMClassifier(n_estimators=50, num_leaves=8, verbose=-1))
    cv = cross_validate(model, X, y, cv=5, scoring=["roc_auc", "f1_macro"])  # your own CV, your claim
    model.fit(X, y)  # on the raw feature columns: what the deployed model will receive
    run = experiment.log_run(  # sent in skops format, never pickled
        model,
        algorithm="lightgbm",
        name="notebook LightGBM",
        cv_metrics={"roc_auc": {"mean": cv["test_roc_auc"].mean(), "std": cv["test_roc_auc"].std()}},
    )
    print(run.external["validation_metrics"]["roc_auc"])  # the platform's own score on validation rows
    print(experiment.leaderboard()[["algorithm", "kind", "roc_auc"]])
    print(experiment.evaluate(run)["verdict"]["text"])  # the platform judges it on the locked test set
    deployment = run.register().deploy("tumours-lightgbm")
    predictions = deployment.predict(version.rows(split="validation").drop(columns=[experiment.target, "_split"]))
    return {"run": run, "experiment": experiment, "deployment": deployment, "predictions": predictions}
