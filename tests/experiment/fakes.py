"""A fake arm result with the fields aggregation, the report and the plots read."""


def arm_result(arm: str, seed: int, digit: float, model: str = "hawk") -> dict:
    """An arm result with the fields the aggregation reads; every metric derives from ``digit``."""
    by_k = {"1": {"digit_accuracy": digit, "number_exact_match": digit / 2},
            "2": {"digit_accuracy": digit / 2, "number_exact_match": digit / 4}}
    return {
        "model": model, "arm": arm, "seed": seed,
        "phonebook": {"digit_accuracy": digit, "number_exact_match": digit / 3, "by_num_queries": by_k,
                      "random_digit_accuracy": 0.103},
        "infilling": {"prefix": 0.25 + digit / 10, "causal": 0.25},
        "val_loss": {"next_token_prediction": 2.0 - digit, "copying_l48-96": 1.0},
        "finetune": {"final_loss": 1.5, "wall_s": 10.0},
        "pretrain": {"wall_s": 100.0 + seed},
        "eval_wall_s": 5.0,
        "load_average": [2.0 + seed, 2.0, 2.0],
        "loss_curve": [[2048, 5.0], [4096, 4.0 - digit]],
        "mixture": ([{"tokens": 0, "class_mixture": {"copying": 0.5, "next_token_prediction": 0.5}},
                     {"tokens": 2048, "class_mixture": {"copying": 0.9, "next_token_prediction": 0.1}}]
                    if arm == "birdie" else []),
    }
