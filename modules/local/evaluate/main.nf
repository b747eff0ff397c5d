process EVALUATE {
    tag "${meta.id}"
    label 'process_medium'

    input:
    tuple val(meta), path(sc), path(st), path(split), path(predictions)

    output:
    tuple val(meta), path("${meta.id}.metrics.csv"), emit: metrics
    tuple val(meta), path("${meta.id}.metrics_summary.csv"), emit: summary
    tuple val(meta), path("${meta.id}.heldout_predictions.h5ad"), emit: predictions
    tuple val(meta), path("${meta.id}.gene_trust.csv"), emit: trust
    path "${meta.id}.*_mqc.tsv", emit: mqc
    path "figures/${meta.id}.*_mqc.png", emit: figures, optional: true
    path "versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    causalged-evaluate \\
        --sample ${meta.id} \\
        --sc ${sc} \\
        --st ${st} \\
        --split ${split} \\
        --outdir . \\
        ${args} \\
        ${predictions}

    python3 -c "from causalged import report; report.write_versions('versions.yml', '${task.process}', report.software_versions())"
    """

    stub:
    """
    mkdir -p figures
    touch ${meta.id}.metrics.csv ${meta.id}.metrics_summary.csv ${meta.id}.heldout_predictions.h5ad ${meta.id}.gene_trust.csv
    touch ${meta.id}.metrics_mqc.tsv ${meta.id}.trust_mqc.tsv figures/${meta.id}.metrics_boxplot_mqc.png
    printf '"%s":\\n    causalged: "%s"\\n' '${task.process}' '${workflow.manifest.version}' > versions.yml
    """
}
