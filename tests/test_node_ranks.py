from fedmoe_flwr.contract import TrainInstruction
from fedmoe_flwr.server.nodes import NodeInfo, NodeTable
from tests.fake_grid import make_node, run


def info(node_id, specialty):
    return NodeInfo(node_id, specialty, specialty, 10, 1, "cpu", "fp")


def test_ranks_are_the_lowest_free_place_in_the_specialty():
    table = NodeTable()
    for node_id, specialty in ((11, "sql"), (12, "sql"), (13, "docs"), (14, "sql")):
        table.add(info(node_id, specialty))
    assert {n: i.rank for n, i in table.registered.items()} == {11: 0, 12: 1, 13: 0, 14: 2}
    table.lose(12, now=0.0)
    table.add(info(12, "sql"))  # rejoins: takes the free place, never a taken one
    assert table.registered[12].rank == 1
    table.lose(11, now=0.0)
    table.add(info(15, "sql"))
    assert table.registered[15].rank == 0


def _train_seeds(tmp_path, node_id):
    grids = []
    run(tmp_path, {node_id: make_node("python_expert")}, grids=grids,
        **{"run.max-updates": 3, "run.specialties": "python_expert"})
    return [TrainInstruction.from_content(m.content)[0].seed for m in grids[0].pushed
            if m.metadata.message_type == "train"]


def test_a_lone_nodes_training_seeds_do_not_depend_on_its_random_node_id(tmp_path):
    first = _train_seeds(tmp_path / "a", 4_021_337)
    assert first == _train_seeds(tmp_path / "b", 98)
    assert len(set(first)) == len(first) >= 3  # one seed per version
