process SELECT_HVG {
    tag "${meta.id}"
    label 'process_low'

    input:
    tuple val(meta), path(sc), path(st), path(genes)

    output:
    tuple val(meta), path("${meta.id}.sc.hvg.h5ad"), path("${meta.id}.st.hvg.h5ad"), emit: h5ad
    tuple val(meta), path("${meta.id}.split.json"), emit: split
    path "${meta.id}.hvg_mqc.tsv", emit: mqc
    path "versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    // genes is an empty list when the samplesheet row has no gene list
    def genes_arg = genes ? "--genes ${genes}" : ''
    """
    causalged-hvg \\
        --sample ${meta.id} \\
        --sc ${sc} \\
        --st ${st} \\
        --outdir . \\
        ${genes_arg} \\
        ${args}

    python3 -c "from causalged import report; report.write_versions('versions.yml', '${task.process}', report.software_versions())"
    """

    stub:
    // The split must be valid JSON with n_folds: the evaluation subworkflow fans out on it.
    def args = task.ext.args ?: ''
    def fold_option = args =~ /--n-folds[ =](\d+)/
    def n_folds = fold_option.find() ? fold_option.group(1) : '5'
    """
    touch ${meta.id}.sc.hvg.h5ad ${meta.id}.st.hvg.h5ad ${meta.id}.hvg_mqc.tsv
    echo '{"n_folds": ${n_folds}}' > ${meta.id}.split.json
    printf '"%s":\\n    causalged: "%s"\\n' '${task.process}' '${workflow.manifest.version}' > versions.yml
    """
}
