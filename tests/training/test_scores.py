from bertserve.training.scores import classification_report, confusion_matrix, format_report


def test_report_by_hand():
    gold = [0, 0, 0, 1, 1, 2]
    predicted = [0, 0, 1, 1, 2, 2]
    report = classification_report(gold, predicted, ["a", "b", "c"])
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert report["accuracy"] == 4 / 6
    # a: P 2/2 R 2/3 F1 0.8; b: P 1/2 R 1/2 F1 0.5; c: P 1/2 R 1 F1 2/3
    assert report["per_class"]["a"] == {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    assert abs(report["macro_f1"] - (0.8 + 0.5 + 2 / 3) / 3) < 1e-12
    assert "accuracy 0.6667" in format_report(report)


def test_class_never_predicted_has_zero_scores():
    report = classification_report([0, 1], [0, 0], ["neg", "pos"])
    assert report["per_class"]["pos"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert confusion_matrix([0, 1], [0, 0], 2) == [[1, 0], [1, 0]]
