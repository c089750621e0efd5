# fish completion for handoff(1). Static: keep in step with `handoff --help`.
set -l cmds serve check config reload upgrade version
complete -c handoff -f
complete -c handoff -n "not __fish_seen_subcommand_from $cmds" -a serve -d 'Run the proxy (default)'
complete -c handoff -n "not __fish_seen_subcommand_from $cmds" -a check -d 'Validate the config'
complete -c handoff -n "not __fish_seen_subcommand_from $cmds" -a config -d 'Print the effective config'
complete -c handoff -n "not __fish_seen_subcommand_from $cmds" -a reload -d 'Reload a running handoff'
complete -c handoff -n "not __fish_seen_subcommand_from $cmds" -a upgrade -d 'Replace a running handoff with the binary on disk'
complete -c handoff -n "not __fish_seen_subcommand_from $cmds" -a version -d 'Print the version'
complete -c handoff -s c -l config -r -F -d 'Config file'
complete -c handoff -n "not __fish_seen_subcommand_from check config reload upgrade version" -s l -l listen -x -d 'Listen address (quick mode)'
complete -c handoff -n "not __fish_seen_subcommand_from check config reload upgrade version" -s b -l backend -x -d 'Backend (quick mode)'
complete -c handoff -n "not __fish_seen_subcommand_from check config reload upgrade version" -s s -l strategy -x -a 'round_robin weighted_round_robin least_conn random p2c hash' -d 'Load-balancing strategy'
complete -c handoff -n "not __fish_seen_subcommand_from check config version" -l admin -x -d 'Admin API address'
complete -c handoff -n "not __fish_seen_subcommand_from check config reload upgrade version" -l log-level -x -a 'debug info warn error' -d 'Log level'
complete -c handoff -n "not __fish_seen_subcommand_from check config reload upgrade version" -l log-format -x -a 'json text' -d 'Log format'
complete -c handoff -n "__fish_seen_subcommand_from config" -l sources -d 'Say which layer set each key'
complete -c handoff -n "__fish_seen_subcommand_from reload upgrade" -l timeout -x -d 'How long to wait'
