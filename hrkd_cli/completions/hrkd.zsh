#compdef hrkd

_hrkd_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _HRKD_COMPLETE=complete_zsh hrkd)
}

compdef _hrkd_completion hrkd