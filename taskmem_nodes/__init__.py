"""TaskMem: a ROS-free core (clips, policy, store, answerer, models) plus thin rclpy nodes in `nodes/`."""
