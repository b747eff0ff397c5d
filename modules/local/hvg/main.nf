process CAUSALGED_SELECT_HVG {
    tag "${meta.id}"
    label 'process_low'

    conda "${moduleDir}/environment.yml"
    container "localhost/causalged:${workflow.manifest.version}"

    input:
    tuple val(meta), path(sc), path(st), path(genes)

    output:
    tuple val(meta), path("${prefix}.sc.hvg.h5ad"), path("${prefix}.st.hvg.h5ad"), emit: h5ad
    tuple val(meta), path("${prefix}.split.json"), emit: split
    path "${prefix}.hvg_mqc.tsv", emit: mqc
    path "versions.yml", emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    // genes is an empty list when the samplesheet row has no gene list
    def genes_arg = genes ? "--genes ${genes}" : ''
    """
    causalged-hvg \\
        --sample ${prefix} \\
        --sc ${sc} \\
        --st ${st} \\
        --outdir . \\
        ${genes_arg} \\
        ${args}

    python3 -c "from causalged import report; report.write_versions('versions.yml', '${task.process}', report.software_versions())"
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    // The split must be valid JSON with n_folds: the evaluation subworkflow fans out on it.
    def args = task.ext.args ?: ''
    def fold_option = args =~ /--n-folds[ =](\d+)/
    def n_folds = fold_option.find() ? fold_option.group(1) : '5'
    """
    touch ${prefix}.sc.hvg.h5ad ${prefix}.st.hvg.h5ad ${prefix}.hvg_mqc.tsv
    echo '{"n_folds": ${n_folds}}' > ${prefix}.split.json
    printf '"%s":\\n    causalged: "%s"\\n' '${task.process}' '${workflow.manifest.version}' > versions.yml
    """
}
