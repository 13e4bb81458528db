"""The batch tutorial's objective on a pool of SSH hosts (docs/ssh.md).

Each trial runs as a process on one of the hosts (GPU workstations, say), never more
at once on a host than its ``slots``. Hosts come from the environment, so the
script runs unchanged anywhere:

    SSH_HOSTS="gpu1:22:2,gpu2:22:1"   host:port:slots, comma-separated
    SSH_USER, SSH_KEY, SSH_KNOWN_HOSTS (~/.ssh/known_hosts),
    SSH_PYTHON (python3: each host's Python, with cloudpickle installed)

The objective is defined here, in ``__main__``, so it travels to the hosts by value
(cloudpickle): nothing of this script needs to be installed on them.
"""

import os

from ax.service.ax_client import AxClient, ObjectiveProperties

from ax_scheduler import AxScheduler, SSHRunner


def objective_function(parameterization):
    x, y = parameterization["x"], parameterization["y"]
    return {"objective": (1 - x) ** 2 + 100 * (y - x**2) ** 2}


def hosts_from_environment():
    env = os.environ
    hosts = []
    for entry in env["SSH_HOSTS"].split(","):
        host, port, slots = entry.split(":")
        hosts.append(
            {
                "host": host,
                "port": int(port),
                "slots": int(slots),
                "username": env.get("SSH_USER"),
                "client_keys": [env["SSH_KEY"]] if "SSH_KEY" in env else None,
                "known_hosts": env.get("SSH_KNOWN_HOSTS", "~/.ssh/known_hosts"),
                "python": env.get("SSH_PYTHON", "python3"),
            }
        )
    return hosts


def main():
    ax_client = AxClient()
    ax_client.create_experiment(
        name="ssh_hosts_demo",
        parameters=[
            {"name": "x", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
            {"name": "y", "type": "range", "bounds": [-2.0, 2.0], "value_type": "float"},
        ],
        objectives={"objective": ObjectiveProperties(minimize=True)},
    )

    runner = SSHRunner(hosts=hosts_from_environment())
    with AxScheduler(ax_client, runner) as scheduler:
        scheduler.set_objective_function(objective_function)
        with scheduler.batch_trial_context() as batch:
            batch.add_trial({"x": 0.5, "y": 0.5})
            batch.add_trial({"x": -0.5, "y": 0.5})
            batch.add_trial({"x": 0.5, "y": -0.5})
        best = scheduler.run_optimization(max_trials=5)

    for index, trial in ax_client.experiment.trials.items():
        host = trial.run_metadata["ax_scheduler"]["host"]
        print(f"Trial {index} on {host}: {trial.status.name}, objective {trial.objective_mean}")
    print("Best parameters:", best)


if __name__ == "__main__":
    main()
