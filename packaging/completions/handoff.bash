# bash completion for handoff(1). Static: keep in step with `handoff --help`.
_handoff() {
    local cur prev words cword
    _init_completion 2>/dev/null || {
        cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}
        words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD
    }
    local cmds="serve check config reload upgrade version"
    local cmd="" i
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in serve|check|config|reload|upgrade|version) cmd=${words[i]}; break ;; esac
    done
    case $prev in
        -c|--config) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        -s|--strategy) COMPREPLY=($(compgen -W "round_robin weighted_round_robin least_conn random p2c hash" -- "$cur")); return ;;
        --log-level) COMPREPLY=($(compgen -W "debug info warn error" -- "$cur")); return ;;
        --log-format) COMPREPLY=($(compgen -W "json text" -- "$cur")); return ;;
        -l|--listen|-b|--backend|--admin|--timeout) return ;;
    esac
    local opts
    case $cmd in
        check) opts="-c --config" ;;
        config) opts="-c --config --sources" ;;
        reload|upgrade) opts="--admin -c --config --timeout" ;;
        version) opts="" ;;
        *) opts="-c --config -l --listen -b --backend -s --strategy --admin --log-level --log-format --help" ;;
    esac
    if [[ -z $cmd && $cur != -* ]]; then
        COMPREPLY=($(compgen -W "$cmds" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    fi
}
complete -F _handoff handoff
