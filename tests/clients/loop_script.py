"""The whole loop with the Python client: README's API tour shows this script verbatim, and
tests/clients/test_python_client.py runs it against the live server and a real worker."""

from mlplatform_client import Client
from sklearn.datasets import load_breast_cancer


def main(base_url: str, token: str, csv_path: str = "cancer.csv") -> dict:
    data = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "diagnosis"})
    data["diagnosis"] = data["diagnosis"].map({0: "malignant", 1: "benign"})
    data.to_csv(csv_path, index=False)  # a real CSV on disk

    client = Client(base_url, token=token)
    goal = {"success_metric": "roc_auc", "success_threshold": 0.9, "baseline_score": 0.5, "decision": "go"}
    project = client.projects.create("Tumours", "classification", decision_rationale="Scans wait too long", **goal)
    version = project.upload(csv_path, "cancer")  # waits for its job: read and profiled
    print(version.warnings_frame()[["kind", "column", "severity"]].head())
    version = version.set_target("diagnosis").split("stratified", column="diagnosis", seed=1)
    recipe = project.save_recipe("scaled", [{"op": "scale", "columns": ["mean radius", "mean area"]}])
    search = {"method": "random", "n_trials": 2}
    experiment = project.train(version, "diagnosis", algorithms=["random_forest"], recipe=recipe, search=search)
    experiment.wait(progress=True)  # one line per change of the job covering every trial
    print(experiment.leaderboard()[["algorithm", "kind", "score", "roc_auc"]])
    best = experiment.best_run()
    print(experiment.evaluate(best)["verdict"]["text"])  # the one look at the locked test set
    deployment = best.register().deploy("tumours", review_threshold=0.95)
    incoming = version.rows(split="validation")  # stand-in for new cases
    predictions = deployment.predict(incoming.drop(columns=["diagnosis", "_split"]))
    print(predictions[["prediction", "confidence", "status"]].head())
    deployment.feedback(predictions["id"], incoming["diagnosis"])  # ground truth arrives
    for review in deployment.reviews(status="pending"):
        review.approve(comment="checked the scan")
    monitoring = deployment.snapshot()  # a monitoring snapshot now, instead of waiting for the hour
    print(monitoring["latest"]["performance"], deployment.drift().head())
    return {"project": project, "experiment": experiment, "deployment": deployment, "predictions": predictions}
